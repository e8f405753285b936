# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need first (idempotent: a stamp file skips pip when setup.cfg is unchanged).
# `make test-fast` is the inner loop: no real training, lm-eval runs, web UI or browser (under a minute).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.factory-kit-installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,deepspeed]"
	@bash scripts/install-system-deps.sh
	@touch $(STAMP)

demo: install
	$(BIN)/factory-kit demo

test: install
	FACTORY_KIT_REQUIRE_BROWSER=1 FACTORY_KIT_REQUIRE_CJK_FONT=1 $(BIN)/python -m pytest -q tests

# the `slow` marker is assigned in tests/conftest.py
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/python bench/render_vs_cli.py

clean:
	rm -rf build outputs models .cache
