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
PYTEST_WORKERS ?= 2

.PHONY: help venv lock lint format typecheck test test-aws unit soak soak-random demo local run-job seed bench bench-backlog schemas synth bootstrap deploy destroy diff nag cfn-lint clean

help:
	@echo "make demo     run the whole pipeline offline (emulated HealthImaging, real state machine and handlers)"
	@echo "make local    the orchestrator as a local server on 127.0.0.1:4599 for the AWS CLI, boto3 and hicopy (Ctrl-C stops)"
	@echo "make test     lint, type-check and run every test suite"
	@echo "make soak     long fault-injection and fuzz runs, then make soak-random"
	@echo "make soak-random   1,000 randomized fault runs within an hour (SOAK_RUNS, SOAK_BUDGET, SOAK_WORKERS)"
	@echo "make bench    throughput benchmark: shipped policy vs naive policy"
	@echo "make bench-backlog   backlog benchmark: 100,000 jobs, overload, interactive lane (domain code, simulated clock)"
	@echo "make synth    synthesize the CDK app (needs hicopy:datastoreIds in cdk.json or CONTEXT=...)"
	@echo "make deploy / make destroy   deploy to / remove from the current AWS account"

# The pinned requirements, then the project itself (pyproject.toml), editable and without resolving anything again.
$(STAMP): pyproject.toml requirements.txt functions/requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

lock:  ## re-pin constraints.txt from a fresh resolution of requirements.txt
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	{ head -2 constraints.txt; build/lock-venv/bin/pip freeze; } > constraints.txt.new && mv constraints.txt.new constraints.txt

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

test-aws: venv node_modules/.installed  ## the real-AWS suite: deploys into your account and costs money (README)
	HICOPY_AWS_TESTS=1 $(BIN)/pytest -q -p no:xdist tests/aws tests/emulator/test_premises.py

# make soak: the slow fault and fuzz tests at soak size, then the randomized soak (about an hour more in all).
soak: venv
	HICOPY_SOAK=1 $(BIN)/pytest -q -m slow -n $(PYTEST_WORKERS)
	$(MAKE) soak-random

SOAK_RUNS ?= 1000
SOAK_BUDGET ?= 3600
# Three worker processes on two cores: each spends part of its time waiting on its runtime's threads.
SOAK_WORKERS ?= 3
# SOAK_RUNS randomized fault runs within SOAK_BUDGET seconds, the invariant checked after each (tests/faults/soak.py);
# fails if any run fails or fewer than SOAK_RUNS finish in time. Replay one: python -m tests.faults.soak --replay ...
soak-random: venv
	$(BIN)/python -m tests.faults.soak --runs $(SOAK_RUNS) --budget $(SOAK_BUDGET) --workers $(SOAK_WORKERS)

demo: venv
	$(BIN)/python -m offline.demo

local: venv  ## make local ARGS="--seed --port 4599"
	$(BIN)/hicopy local $(ARGS)

run-job: venv  ## make run-job JOB=my-job.json ARGS="--seed"
	$(BIN)/python -m offline run-job $(JOB) $(ARGS)

seed: venv
	$(BIN)/python -m offline seed

bench: venv
	$(BIN)/python -m offline.bench

bench-backlog: venv  ## issue #13: exits 1 when a target is missed
	$(BIN)/python -m offline.bench.backlog

schemas: venv
	$(BIN)/python -m hicopy.schemas schemas

# CDK. Pass your settings with CDK_CONTEXT, e.g.
#   make deploy CDK_CONTEXT="-c hicopy:datastoreIds=<id> -c hicopy:alarmEmail=ops@example.com"
CDK := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx --no-install cdk
CDK_CONTEXT ?=
CHECK_CONTEXT ?= -c hicopy:datastoreIds=0123456789abcdef0123456789abcdef -c hicopy:importOutputBuckets=example-import-output \
                 -c hicopy:postImportPolicy=consolidate -c hicopy:deleteAfterConsolidate=true -c hicopy:alarmEmail=ops@example.com \
                 -c hicopy:datastoreKmsKeyArns=arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8899-aabbccddeeff
CHECK_OUT := build/cdk.out.check

synth: venv node_modules/.installed  ## pip bundling (no Docker) + CDK validation + cdk-nag -> cdk.out/
	$(CDK) synth --quiet $(CDK_CONTEXT)

bootstrap: venv node_modules/.installed  ## once per account/region
	$(CDK) bootstrap $(CDK_CONTEXT)

diff: venv node_modules/.installed
	$(CDK) diff $(CDK_CONTEXT)

deploy: venv node_modules/.installed
	$(CDK) deploy --require-approval broadening $(CDK_CONTEXT)

destroy: venv node_modules/.installed
	$(CDK) destroy --force $(CDK_CONTEXT)

nag: venv node_modules/.installed  ## cdk-nag + CDK validation on the superset stack, no bundling
	SKIP_BUNDLING=1 $(CDK) synth --quiet -o $(CHECK_OUT) $(CHECK_CONTEXT)

cfn-lint: nag
	$(BIN)/cfn-lint $(CHECK_OUT)/HealthImagingCopyOrchestrator.template.json

clean:
	rm -rf cdk.out build bench-results .pytest_cache .mypy_cache .ruff_cache
