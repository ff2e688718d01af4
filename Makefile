# Two commands do all the set-up on a fresh machine:
#   make demo   runs `opsloop demo` on embedded defaults
#   make test   runs lint, types and the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# Every distribution: core, then each folder under plugins/ and extensions/ with a pyproject.toml.
PACKAGES := core $(sort $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml extensions/*/pyproject.toml)))
DIST ?= dist

# The JupyterLab extension's built assets are committed (about 20 KB), so neither CI nor a
# user needs Node.js; `make labextension` rebuilds them from extensions/jupyter/js (Node 20 and
# npm from the npm registry, plus jupyterlab in the venv for its shared-package versions).
LABEXT := extensions/jupyter/src/opsloop_jupyter/labextension

.PHONY: setup demo test bench dist clean labextension

$(VENV)/.installed: requirements-dev.txt $(PACKAGES:%=%/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	test -f $(LABEXT)/package.json || $(MAKE) labextension
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode $(foreach p,$(PACKAGES),-e ./$(p)) -r requirements-dev.txt
	$(PY) -m compileall -q $(foreach p,$(PACKAGES),$(p)/src)
	touch $@

# Bytecode is compiled at install time: uv does not by default, and where
# PYTHONDONTWRITEBYTECODE is set every `opsloop` start would compile typer, rich and click
# again (0.30 s instead of 0.16 s for `opsloop --help` here).
setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/opsloop demo $(ARGS)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(ARGS)

# An sdist and a wheel (built from the sdist) of every distribution — core, plugins/*,
# extensions/* — into $(DIST)/, so `pip install --find-links dist opsloop-mlflow` works:
# opsloop is on no index. Needs only uv, not the full set-up. DIST_FORMATS=--wheel skips
# the sdists (the install test does).
DIST_FORMATS ?=
dist:
	test -x $(VENV)/bin/uv || { test -x $(PY) || python3 -m venv $(VENV); \
		$(PY) -m pip install -q --disable-pip-version-check uv; }
	$(foreach p,$(PACKAGES),$(VENV)/bin/uv build -q --no-sources $(DIST_FORMATS) --out-dir $(DIST) ./$(p) &&) true

labextension:
	test -x $(VENV)/bin/jupyter || { test -x $(PY) || python3 -m venv $(VENV); \
		$(PY) -m pip install -q --disable-pip-version-check "jupyterlab>=4,<5"; }
	cd extensions/jupyter/js && npm ci --no-audit --no-fund && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build

bench: setup
	$(PY) tests/benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DIST)
