# Two commands: `make test` and `make reproduce`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test test-all reproduce reproduce-full lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Default test run (excludes tests marked slow). pytest's exit code 5 (no tests
# collected) is not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-all: $(STAMP)
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

reproduce: $(STAMP)
	$(BIN)/complemjax reproduce --out results

reproduce-full: $(STAMP)
	$(BIN)/complemjax reproduce --out results --full

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	for f in experiments/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
