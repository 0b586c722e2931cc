# Two commands matter on a fresh machine: `make demo` and `make test`.
# Both create .venv from nothing and install the project into it first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install demo test lint types unit bench mutation clean

help:
	@echo "make demo   run the daemon against the built-in simulator (sample apps)"
	@echo "make test   every check CI runs: ruff, ruff format, import layers, mypy --strict, pytest"
	@echo "make bench  the benchmarks (not part of make test)"
	@echo "make mutation  mutation score of the security-relevant core (slow; not part of make test)"
	@echo "make clean  remove .venv and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/callback-monitor demo

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/lint-imports --no-cache

types: $(STAMP)
	$(BIN)/mypy --strict monitor

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint types unit

bench: $(STAMP)
	$(BIN)/python -m bench

# The security-relevant core, whole: the pure modules, signing, and the client's answer parsing and
# error mapping (tencent/envelope; the client's I/O, retries and failover are the reliability suite's).
MUTANTS := 'monitor.drift.*' 'monitor.state.*' 'monitor.redact.*' 'monitor.urls.*' \
	'monitor.tencent.usersig.*' 'monitor.tencent.envelope.*'

mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	$(BIN)/mutmut run --max-children 1 $(MUTANTS)
	$(BIN)/python -m tests.mutation_score
	$(BIN)/python -m tests.mutation_constants

clean:
	rm -rf $(VENV) mutants .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
