# Two commands on a fresh machine with only python3: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DEMO_DB ?= sqlite:///crm.sqlite3

.PHONY: install test demo lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/pytest
	$(BIN)/ruff check engine packs tests
	$(BIN)/mypy engine

lint: install
	$(BIN)/ruff check engine packs tests
	$(BIN)/mypy engine

# The demo: the standard CRM in a SQLite file in this folder, demo users and data, then the
# server on http://127.0.0.1:8000 (Ctrl-C stops it). `crm demo` prints the users and passwords.
demo: install
	CRM_DATABASE_URL=$(DEMO_DB) $(BIN)/crm pack validate packs/standard_crm
	CRM_DATABASE_URL=$(DEMO_DB) $(BIN)/crm db migrate
	CRM_DATABASE_URL=$(DEMO_DB) $(BIN)/crm demo
	CRM_DATABASE_URL=$(DEMO_DB) $(BIN)/crm serve --host 127.0.0.1 --port 8000

clean:
	rm -rf $(VENV) *.egg-info
