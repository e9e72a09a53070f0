# perfbench: every target creates the virtual environment it needs, so any of them
# works as the very first command on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test check lint lab bench clean-venv chromium

# (Re)install when the venv is missing or pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@# --compile-bytecode: this environment sets PYTHONDONTWRITEBYTECODE=1, so without it
	@# every import of altair or papermill would recompile (see ../shared/STACK.md).
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[all,dev]'
	@# rfc3987-syntax builds ~35 Lark parsers at import time and adds ~3 s to every kernel
	@# start and `import altair`; jsonschema only skips its optional `iri` format check without it.
	@$(BIN)/uv pip uninstall --quiet --python $(BIN)/python rfc3987-syntax 2>/dev/null || true
	@# the editable install leaves perfbench itself uncompiled: without this, every perfbench
	@# process compiles the modules it imports (~50 ms per process)
	@$(BIN)/python -m compileall -q perfbench
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/perfbench demo

# the report tests open every experiment's report in headless Chromium (Debian's package), installed here
# when it is missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

# the everyday subset: everything but the tests marked slow (pyproject.toml's pytest markers)
check: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check perfbench tests benchmarks
	$(BIN)/mypy

# --allow-root only where the user is root (Jupyter refuses root without it); notebooks find the
# project's data/ themselves (they walk up to pyproject.toml, or read $$PERFBENCH_DATA)
lab: $(STAMP)
	$(BIN)/jupyter lab --no-browser --ip 127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

# the side-by-side benchmark (benchmarks/README.md); BENCH_ARGS for a part or a quick run, e.g.
#   make bench BENCH_ARGS="--only fixed --fixed-seconds 5"
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
