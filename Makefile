PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check engine packs tests
	$(BIN)/mypy engine

demo: install
	$(BIN)/crm db migrate

clean:
	rm -rf $(VENV) *.egg-info
