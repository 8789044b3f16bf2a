# Flowlink: `make run` starts the service, `make test` runs the whole suite.
# Both install everything they need into .venv first (nothing has to be installed by hand).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.flowlink-installed
HOST ?= 127.0.0.1
PORT ?= 8400

.PHONY: install run test bench clean ui ui-test chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	$(PIP) install --quiet -e examples/flowlink-connector-demo
	touch $(STAMP)

# the web editor: npm ci from the committed lockfile (again only when it changes), then a Vite build into ui/dist
UI_STAMP := ui/node_modules/.flowlink-installed

$(UI_STAMP): ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	touch $(UI_STAMP)

ui: $(UI_STAMP)
	cd ui && npm run build

ui-test: $(UI_STAMP)
	cd ui && npm test

# the browser tests drive Debian's Chromium (with a CJK font for the zh-CN screenshots)
chromium:
	test -x /usr/bin/chromium && test -d /usr/share/fonts/truetype/wqy || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei || \
	   (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei))

run: install ui
	$(VENV)/bin/flowlink serve --host $(HOST) --port $(PORT) --load-examples

test: install ui ui-test chromium
	FLOWLINK_REQUIRE_BROWSER=1 $(PY) -m pytest -q -p no:cacheprovider --durations=25

bench: install
	$(PY) bench/engine_overhead.py && $(PY) bench/scaling.py

clean:
	rm -rf $(VENV) .flowlink *.egg-info
