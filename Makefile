# refdesk: `make run` starts everything with demo data; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

CHROMIUM ?= /usr/bin/chromium

PROMTOOL ?= /usr/bin/promtool

# ESLint for the web clients, at the versions package-lock.json pins, in node_modules/.
ESLINT := node_modules/.bin/eslint
ESLINT_STAMP := node_modules/.installed-stamp

.PHONY: install lock chromium promtool eslint run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[local,test]'
	touch $(STAMP)

install: $(STAMP)

# The image's dependencies, pinned with their hashes (deploy/Containerfile installs them
# with --require-hashes): pyproject's runtime dependencies and the setuptools that builds
# refdesk, for Python 3.11 on Linux, as the image runs. Run after changing a dependency.
lock: install
	$(PY) -m pip install --quiet "pip-tools>=7.4,<8"
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	  --all-build-deps --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock pyproject.toml

# The browser tests drive Debian's Chromium (Playwright never downloads a browser here).
chromium:
	@test -x "$(CHROMIUM)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): install Debian's chromium package, or set CHROMIUM=/path/to/chromium" >&2; \
	    exit 1; \
	  fi; }

# Metrics and alert rules are checked with promtool (Debian's prometheus package has it).
promtool:
	@test -x "$(PROMTOOL)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else \
	    echo "The monitoring tests need promtool at $(PROMTOOL): install Debian's prometheus package, or set PROMTOOL=/path/to/promtool" >&2; \
	    exit 1; \
	  fi; }

# The JavaScript linter: `npm ci` installs exactly what package-lock.json pins, into
# node_modules/; Node.js and npm are Debian's packages when the machine has none.
$(ESLINT_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; \
	  else \
	    echo "make lint needs Node.js 18.18 or later and npm: install Debian's nodejs and npm packages" >&2; \
	    exit 1; \
	  fi; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ESLINT_STAMP)

eslint: $(ESLINT_STAMP)

run: install
	$(PY) -m deploy.local

test: install chromium promtool
	REFDESK_CHROMIUM=$(CHROMIUM) REFDESK_PROMTOOL=$(PROMTOOL) $(PY) -m pytest

lint: install eslint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(ESLINT) .

bench: install
	$(PY) -m bench.nats_baseline
	$(PY) -m bench.e2e_latency --rate 500 --table 250 750 1000 1500
	$(PY) -m bench.routing_message
	$(PY) -m bench.claim_race

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
