# qlingest developer tasks. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data
RUN_DIR ?= run-data

.PHONY: help install build-dev build-prod run test test-rust test-python format lint lint-python lint-rust bench all clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet maturin
	$(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
		print('\n'.join(p['dependencies'] + p['optional-dependencies']['test']))" > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements.txt
	touch $@

install: $(VENV)/.installed ## create .venv with every dependency

build-dev: install ## build the extension in debug mode into .venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --quiet

build-prod: install ## build the extension with release settings into .venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --quiet --release

run: build-prod ## ingest the real logs under $(DATA) into $(RUN_DIR) and print the summary
	rm -rf $(RUN_DIR)
	$(PY) scripts/ingest_real_data.py $(DATA) $(RUN_DIR)

test-rust: ## cargo tests of the engine
	cargo test --quiet

test-python: build-prod ## pytest, benchmarks run once each as smoke tests
	$(PY) -m pytest -q

test: test-rust test-python ## every test: cargo, then pytest

format: install ## apply rustfmt and ruff format
	cargo fmt
	$(VENV)/bin/ruff format python tests benches scripts
	$(VENV)/bin/ruff check --fix --quiet python tests benches scripts

lint-rust: ## rustfmt check and clippy with warnings as errors
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings

lint-python: install ## ruff lint and format check
	$(VENV)/bin/ruff check python tests benches scripts
	$(VENV)/bin/ruff format --check python tests benches scripts

lint: lint-rust lint-python ## all linters

bench: build-prod ## pytest-benchmark suites with timing on
	$(PY) -m pytest benches --benchmark-enable -q -p no:randomly

all: lint test ## lint and test

clean: ## remove build outputs and the run directory
	rm -rf target $(VENV) $(RUN_DIR)
