# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need first (idempotent: a stamp file skips pip when setup.cfg is unchanged).
# `make test-fast` is the inner loop: no real training, lm-eval runs, web UI or browser (under a minute).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.factory-kit-installed
GGUF_BUILD_JOBS ?= 2

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

# The gguf extra builds llama-cpp-python from source: without LLaVA, GGUF_BUILD_JOBS jobs (~4 min on 2 cores;
# 12 min without the flag); then llama.cpp's GGUF converter is fetched from its source archive (docs/shipping.md).
$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$(GGUF_BUILD_JOBS) $(BIN)/python -m pip install -q -e ".[test,deepspeed,ray,gguf]"
	$(BIN)/python -m factory_kit.ship.converter >/dev/null
	@bash scripts/install-system-deps.sh
	@touch $(STAMP)

demo: install
	$(BIN)/factory-kit demo

test: install
	FACTORY_KIT_REQUIRE_BROWSER=1 FACTORY_KIT_REQUIRE_CJK_FONT=1 $(BIN)/python -m pytest -q --durations=15 tests

# the `slow` marker is assigned in tests/conftest.py
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/python bench/render_vs_cli.py

clean:
	rm -rf build outputs models .cache
