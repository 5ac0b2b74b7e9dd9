# Vigil's two quick-start commands:  make demo   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: demo test lint typecheck rust docs reference unit bench lock clean

$(BIN)/python:
	@command -v cargo >/dev/null || { echo "Vigil's engine is compiled from Rust: install Rust 1.82 or later (rustup.rs, or your package manager's cargo), then run make again"; exit 2; }
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 13) else "Vigil needs Python 3.11 or 3.12, found %d.%d (set PYTHON=...)" % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt --upgrade pip

$(INSTALLED): pyproject.toml constraints.txt native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt --build-constraint constraints.txt -e '.[test]'
	touch $@

## demo: install, simulate a fleet of 500 tenants over 10 weeks, run Vigil on it, print a summary
demo: $(INSTALLED)
	mkdir -p $(DEMO_DIR)
	$(BIN)/vigil simulate --tenants 500 --days 70 --seed 7 --output $(DEMO_DIR)/events.jsonl --manifest $(DEMO_DIR)/manifest.json
	$(BIN)/vigil run --input $(DEMO_DIR)/events.jsonl --output $(DEMO_DIR)/out
	@echo "outputs in $(DEMO_DIR)/out/: health, signals, tasks, notifications, deadletter (.jsonl)"

## test: lint, type-check, build the docs and run the whole test suite, the compiled core's too
test: lint typecheck rust docs unit

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

## rust: the compiled core's formatting, lints (as errors) and unit tests, built against
## the venv's Python
rust: | $(BIN)/python
	cd native && cargo fmt --check
	cd native && PYO3_PYTHON=$(abspath $(BIN)/python) cargo clippy --locked --all-targets -- -D warnings
	cd native && PYO3_PYTHON=$(abspath $(BIN)/python) cargo test --locked

## docs: the documentation site into site/, strictly (a broken link fails), after checking
## that the reference made from the code is up to date (`make reference` writes it)
docs: $(INSTALLED)
	$(BIN)/python scripts/reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

reference: $(INSTALLED)
	$(BIN)/python scripts/reference.py

unit: $(INSTALLED)
	$(BIN)/python -m pytest

## bench: throughput of the full pipeline against a bare Bytewax flow (1M events, 10k tenants)
bench: $(INSTALLED)
	$(BIN)/python bench/throughput.py --repeat 3

## lock: re-pin constraints.txt to the newest versions pyproject.toml allows, in a fresh venv
## (setuptools and wheel as the builds of Vigil and of durable-rules' sdist get them)
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip 'setuptools>=77' wheel 'setuptools-rust>=1.9,<2'
	.lock-venv/bin/python -m pip install --quiet --no-build-isolation '.[test]'
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/python -m pip freeze --all --exclude vigil; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .lock-venv build

clean:
	rm -rf $(VENV) $(DEMO_DIR) site .mypy_cache .ruff_cache .pytest_cache
