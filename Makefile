# The one entry point. `make demo` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export PYTHONPATH := functions:.
PYTEST_WORKERS ?= 2

.PHONY: help venv lint format typecheck test unit soak demo bench schemas synth deploy destroy diff clean

help:
	@echo "make demo     run the whole pipeline offline (emulated HealthImaging, real state machine and handlers)"
	@echo "make test     lint, type-check and run every test suite"
	@echo "make soak     long fault-injection and fuzz runs"
	@echo "make bench    throughput benchmark: shipped policy vs naive policy"
	@echo "make synth    synthesize the CDK app (needs hicopy:datastoreIds in cdk.json or CONTEXT=...)"
	@echo "make deploy / make destroy   deploy to / remove from the current AWS account"

$(STAMP): requirements.txt functions/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-fund --no-audit --silent
	touch node_modules/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy functions/hicopy infra offline app.py

test: lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

unit: venv
	$(BIN)/pytest -q tests/unit tests/functional

soak: venv
	HICOPY_SOAK=1 $(BIN)/pytest -q -m slow -n $(PYTEST_WORKERS)

demo: venv
	$(BIN)/python -m offline.demo

bench: venv
	$(BIN)/python -m offline.bench

schemas: venv
	$(BIN)/python -m hicopy.schemas schemas

synth: venv node_modules/.installed
	npx cdk synth --quiet $(CONTEXT)

diff: venv node_modules/.installed
	npx cdk diff $(CONTEXT)

deploy: venv node_modules/.installed
	npx cdk deploy --require-approval broadening $(CONTEXT)

destroy: venv node_modules/.installed
	npx cdk destroy $(CONTEXT)

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
