# Two commands on a fresh machine with only python3: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DEMO_DB ?= sqlite:///crm.sqlite3
# The browser tests drive Debian's Chromium; Playwright's own browser download cannot work here.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# As root (CI) apt-get runs as is; otherwise through sudo when there is one.
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null 2>&1 || echo sudo)

.PHONY: install browser test demo lint screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Chromium, and a CJK font so that Chinese text in screenshots is readable. Quiet when present.
browser:
	@if ! test -x $(CHROMIUM) || ! { test -e $(CJK_FONT) || fc-list :lang=zh 2>/dev/null | grep -q .; }; then \
	  echo "Installing Debian's chromium and a CJK font for the browser tests (apt-get)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    chromium fonts-wqy-microhei >/dev/null || true; \
	fi
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing and could not be installed:" \
	  "run 'apt-get install chromium' as root" >&2; exit 1; }

# pytest runs on 2 workers (pytest-xdist; addopts in pyproject.toml); `$(BIN)/pytest -n 0` runs serially.
test: install browser
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

# The pictures of docs/user.md, taken from a fresh demo server in Chromium.
screenshots: install browser
	$(BIN)/python -m tests.browser.make_screenshots docs/screenshots

clean:
	rm -rf $(VENV) *.egg-info test-output

# The benchmark (bench/, docs/performance.md): our server, a hand-written floor app and Django admin
# on the same data set, driven by wrk. Data sets are cached in bench/.cache and PostgreSQL
# (databases bench_*); results go to bench/results/. Django gets its own venv under bench/django.
BENCH_DJANGO := bench/django/.venv
BENCH_DJANGO_STAMP := $(BENCH_DJANGO)/.installed-$(shell cksum < bench/django/requirements.txt | cut -d' ' -f1)
.PHONY: bench bench-quick bench-tools

$(BENCH_DJANGO_STAMP): bench/django/requirements.txt
	test -x $(BENCH_DJANGO)/bin/python || $(PY) -m venv $(BENCH_DJANGO)
	$(BENCH_DJANGO)/bin/python -m pip install --quiet -r bench/django/requirements.txt
	rm -f $(BENCH_DJANGO)/.installed-*
	touch $@

bench-tools: install $(BENCH_DJANGO_STAMP)
	@command -v wrk >/dev/null || { echo "Installing wrk (apt-get)"; $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }

# 100,000 customers, short runs: a few minutes per database once the data set is cached.
bench-quick: bench-tools
	$(BIN)/python -m bench --customers 100000 --quick

# 1,000,000 customers (2M contacts, 3M activities, 500k opportunities), SQLite and PostgreSQL.
bench: bench-tools
	$(BIN)/python -m bench --customers 1000000
