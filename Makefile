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

# The demo database is a SQLite file in this folder; the UI and demo data arrive with later issues.
demo: install
	CRM_DATABASE_URL=$(DEMO_DB) $(BIN)/crm pack validate packs/standard_crm
	CRM_DATABASE_URL=$(DEMO_DB) $(BIN)/crm db migrate
	@echo
	@echo "The standard CRM is migrated into crm.sqlite3. Try:"
	@echo "  $(BIN)/crm record create customer --data '{\"name\": \"上海示例贸易有限公司\"}'"
	@echo "  $(BIN)/crm record list customer --sort -created_at"

clean:
	rm -rf $(VENV) *.egg-info
