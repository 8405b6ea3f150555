# The two commands: `make run` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest s3-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the service on its embedded default: API on 127.0.0.1:8080, data under ./var.
run: $(STAMP)
	$(BIN)/notary db upgrade
	$(BIN)/notary serve

## Everything CI checks: lint, type check, the whole test suite.
test: $(STAMP) s3-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy storage chain notary cli

pytest: $(STAMP)
	$(BIN)/pytest

## Installs the Ceph packages the S3 tests run against, where this machine allows it.
s3-deps:
	@scripts/install-s3-deps.sh || echo "S3 test server packages unavailable; the S3 tests will skip and say why"

bench: $(STAMP)
	$(BIN)/python benchmarks/storage_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
