# meterwatch: every target does its own set-up, idempotently.
#   make demo   - install everything, start the local stack, run the main job
#   make test   - install everything, lint, run unit + functional + integration tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MW := $(BIN)/meterwatch
PYTEST_ARGS ?=

.PHONY: install sysdeps stack-up stack-down stack-status lint test test-fast bench demo clean

$(STAMP): pyproject.toml
	@echo ">> python venv in $(VENV) and pip install -e .[dev]"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo ">> compiling the engine's kernels once (numba caches them; about half a minute)"
	$(BIN)/python -c "from stream.engine import warm_up_kernels; from stream.settings import Settings; print(f'{warm_up_kernels(Settings()):.1f} s')"
	touch $(STAMP)

install: $(STAMP)

# Debian packages (redis-server, prometheus, prometheus-alertmanager) when missing,
# and the Apache Kafka jars from Maven Central (pinned, checksum-verified).
sysdeps: install
	bash deploy/local/install.sh

stack-up: sysdeps
	$(MW) stack up

stack-down: install
	$(MW) stack down

stack-status: install
	$(MW) stack status

lint: install
	@echo ">> ruff check, ruff format --check, mypy --strict on detectors/ and rules/"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy detectors rules

# Unit and functional tests need no servers.
test-fast: lint
	$(BIN)/pytest tests/unit tests/functional $(PYTEST_ARGS)

# The whole suite. The stack is started for the integration tests and stopped
# afterwards if this target started it; METERWATCH_REQUIRE_STACK turns a
# missing server into a failure instead of a skip.
# A stack that cannot start fails the target (after stopping what did start), and
# the tests do not run against half a stack.
test: lint sysdeps
	@was_up=0; $(MW) stack status >/dev/null 2>&1 && was_up=1; \
	rc=0; $(MW) stack up || rc=$$?; \
	if [ $$rc = 0 ]; then \
	  METERWATCH_REQUIRE_STACK=1 $(BIN)/pytest tests/unit tests/functional tests/integration $(PYTEST_ARGS) || rc=$$?; \
	fi; \
	if [ $$was_up = 0 ]; then $(MW) stack down || true; fi; \
	exit $$rc

bench: sysdeps
	$(MW) stack up
	$(BIN)/pytest tests/benchmarks -s -p no:cacheprovider $(PYTEST_ARGS)

demo: sysdeps
	$(MW) demo

clean:
	-$(MW) stack down
	rm -rf .stack .pytest_cache .mypy_cache .ruff_cache
