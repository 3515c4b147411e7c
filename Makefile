# Two commands set everything up on a fresh machine:  `make demo`  and  `make test`.
# Each creates the virtual environment (.venv) on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN = $(VENV)/bin
TRIALS ?= 8
TEST_WORKERS ?= 2

.PHONY: demo test lint bench clean-studies

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# A kd search on the built-in demo data (generated on first use under studies/).
demo: $(VENV)/.installed
	$(BIN)/asc-auto search --technique kd --trials $(TRIALS)

# Tests in TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0 runs them in this one.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(VENV)/.installed
	$(BIN)/ruff check asc_auto tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/throughput.py

# Removes what asc-auto wrote under studies/ (see asc_auto/clean.py), nothing else.
clean-studies: $(VENV)/.installed
	$(BIN)/asc-auto clean --home studies
