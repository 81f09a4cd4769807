# Two commands: `make test` and `make reproduce`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test test-slow test-all reproduce reproduce-full lint format bench bench-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Default test run (excludes tests marked slow), in PYTEST_WORKERS processes (pytest-xdist:
# compiling XLA programs is single-threaded, so two workers use both cores of a laptop/CI
# box). pytest's exit code 5 (no tests collected) is not a failure of the suite.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS)
# Setup: the native CPU kernels compile once per machine into the per-user cache (about
# 8 s; a no-op afterwards, and a warning when there is no compiler), so neither test
# worker pays for it inside the timed run.
NATIVE := $(BIN)/python -c "from complemjax import _native; _native.load()"
# The default suite is bound by XLA compile time (about 80% of it: ~2,600 small programs),
# not by running them, so it compiles with JAX's `jax_disable_most_optimizations` (LLVM at
# -O0, no expensive passes): 171 s -> 121 s on 2 cores. FAST_COMPILE=0 compiles as users
# do; `make test-all` (which CI runs) always does, so every property, bit-for-bit ones
# included, is also checked on the programs users run.
FAST_COMPILE ?= 1
test: $(STAMP)
	$(NATIVE)
	JAX_DISABLE_MOST_OPTIMIZATIONS=$(FAST_COMPILE) $(PYTEST) -m "not slow"; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

# Only the tests marked slow (the long end-to-end and large-sample checks), at full
# optimization.
test-slow: $(STAMP)
	$(NATIVE)
	JAX_DISABLE_MOST_OPTIMIZATIONS=0 $(PYTEST) -m slow; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

# Every test at full optimization; CI runs `make test` and then this.
test-all: $(STAMP)
	$(NATIVE)
	JAX_DISABLE_MOST_OPTIMIZATIONS=0 $(PYTEST); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

reproduce: $(STAMP)
	$(BIN)/complemjax reproduce --out results

reproduce-full: $(STAMP)
	$(BIN)/complemjax reproduce --out results --full

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_private_imports.py
	$(BIN)/python tools/check_function_length.py
	$(BIN)/python tools/check_annotations.py complemjax

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# CPU benchmarks, one at a time (time them on an otherwise idle machine); each prints
# ratios against its baseline, and the harness-based ones record their figures in
# experiments/cpu_baseline.json for the GPU table. bench_cf needs the `bench` extra.
BENCH_JSON := --json experiments/cpu_baseline.json
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python experiments/bench_cf.py
	$(BIN)/python experiments/bench_lightgcn.py
	$(BIN)/python experiments/bench_ranking.py $(BENCH_JSON)
	$(BIN)/python experiments/bench_similarity.py $(BENCH_JSON)
	$(BIN)/python experiments/bench_fusion.py $(BENCH_JSON)
	$(BIN)/python experiments/bench_probe_sweep.py $(BENCH_JSON)
	$(BIN)/python experiments/bench_sweep_scale.py $(BENCH_JSON)

# On a machine with a GPU (refuses to run on CPU): every benchmark at GPU scale, one
# markdown table beside the CPU figures. See experiments/bench_gpu.py.
bench-gpu:
	bash experiments/bench_gpu.sh

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
