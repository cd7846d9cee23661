# tuban: `make demo` and `make test` work on a fresh Debian machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-workspace

.PHONY: demo test setup system-deps lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[all,test]"
	touch $@

WEB_VENDOR := src/tuban/web/static/vendor/VERSIONS.txt
$(WEB_VENDOR): package.json package-lock.json scripts/build-web-assets
	scripts/build-web-assets

setup: $(VENV)/.installed $(WEB_VENDOR)

system-deps:
	scripts/install-system-deps

demo: setup
	$(BIN)/tuban demo --workspace $(DEMO_DIR)

test: setup system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	scripts/run-tests

lint: setup
	$(BIN)/ruff check src tests bench

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) artifacts .pytest_cache .mypy_cache .ruff_cache
