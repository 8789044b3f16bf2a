# Flowlink: `make run` starts the service, `make test` runs the whole suite.
# Both install everything they need into .venv first (nothing has to be installed by hand).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.flowlink-installed
HOST ?= 127.0.0.1
PORT ?= 8400

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	$(PIP) install --quiet -e examples/flowlink-connector-demo
	touch $(STAMP)

run: install
	$(VENV)/bin/flowlink serve --host $(HOST) --port $(PORT) --load-examples

test: install
	$(PY) -m pytest -q -p no:cacheprovider

bench: install
	$(PY) bench/engine_overhead.py

clean:
	rm -rf $(VENV) .flowlink *.egg-info
