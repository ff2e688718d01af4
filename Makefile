# Two commands do all the set-up on a fresh machine:
#   make demo   runs `opsloop demo` on embedded defaults
#   make test   runs lint, types and the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PACKAGES := core $(sort $(wildcard plugins/*))

.PHONY: setup demo test bench clean

$(VENV)/.installed: requirements-dev.txt core/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
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

bench: setup
	$(PY) tests/benchmarks/run_all.py

clean:
	rm -rf $(VENV)
