"""One AWS environment for the handler suites (functional, security, fuzz): moto with the resources the handlers use,
the HealthImaging emulator with one data store, every handler's environment variables, a manual clock shared by the
handlers and the emulator (no sleeping), and a recorder of the AWS calls each handler makes.

``aws_environment`` is a context manager rather than a fixture so that module-scoped fixtures (and Hypothesis tests,
which must not reuse function-scoped fixtures) can hold one environment for many examples.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import boto3
import pytest
from moto import mock_aws

from hicopy import clock as clock_module
from offline.healthimaging import HealthImagingEmulator
from tests.support.aws import Resources, create_resources, create_state_machine, drain
from tests.support.calls import CallRecorder
from tests.support.fakes import FakeClock
from tests.support.handlers import CTX, clear_handler_caches, handler_variables, task_event

DATASTORE_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
COPY_SECONDS = 10.0  # how long the emulator keeps a copy LOCKED (on the manual clock)


@dataclass
class AwsEnv:
    emulator: HealthImagingEmulator
    clock: FakeClock
    recorder: CallRecorder
    job_queue_url: str
    dlq_url: str
    capture_url: str
    state_machine_arn: str
    datastore_id: str = DATASTORE_ID
    _machines: Iterator[int] = field(default_factory=lambda: count(1))
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """The test's own clients (created once: a client costs ~30 ms)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service)
        return self._clients[service]

    def events(self) -> list[dict[str, Any]]:
        """Every event our code put on the custom bus since the last call."""
        return [json.loads(m["Body"]) for m in drain(self.client("sqs"), self.capture_url)]

    def dlq(self) -> list[dict[str, Any]]:
        """Every message in the rejected-jobs queue (removed)."""
        return drain(self.client("sqs"), self.dlq_url)

    def job_queue(self) -> list[dict[str, Any]]:
        return drain(self.client("sqs"), self.job_queue_url)

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn)
        return [sfn.describe_execution(executionArn=e["executionArn"]) for page in pages for e in page["executions"]]

    def fresh_state_machine(self) -> str:
        """Point the consumer at a new, empty state machine (a clean slate of execution names).

        A warm consumer keeps its ``ExecutionStarter``: it is repointed rather than rebuilt (a cold start would
        create three clients per example)."""
        self.state_machine_arn = create_state_machine(self.client("stepfunctions"), f"copy-{next(self._machines)}")
        os.environ["STATE_MACHINE_ARN"] = self.state_machine_arn
        from hicopy.handlers import consumer

        if consumer._adapters.cache_info().currsize:
            consumer._adapters()[0].state_machine_arn = self.state_machine_arn
        return self.state_machine_arn


@contextmanager
def aws_environment(monkeypatch: pytest.MonkeyPatch | None = None, **variables: str) -> Iterator[AwsEnv]:
    """The environment, from a cold start; ``variables`` override the handlers' environment variables.

    The variables are set with ``monkeypatch`` when given (a test's own ``monkeypatch.setenv`` of one of them is then
    undone in the right order); in any case the whole ``os.environ`` is restored on exit, as are the clock and the
    caches."""
    clock = FakeClock()
    previous_clock = clock_module.set_clock(clock)
    saved_env = dict(os.environ)
    recorder = CallRecorder()
    try:
        with mock_aws():
            resources: Resources = create_resources()
            emulator = HealthImagingEmulator(clock=clock, background=False, copy_duration=COPY_SECONDS)
            emulator.create_datastore("tests", datastore_id=DATASTORE_ID)
            for name, value in {**handler_variables(resources, DATASTORE_ID), **variables}.items():
                if monkeypatch is None:
                    os.environ[name] = value
                else:
                    monkeypatch.setenv(name, value)
            clear_handler_caches()
            recorder.install()
            try:
                with emulator:
                    yield AwsEnv(
                        emulator,
                        clock,
                        recorder,
                        resources.job_queue_url,
                        resources.dlq_url,
                        resources.capture_url,
                        resources.state_machine_arn,
                    )
            finally:
                recorder.uninstall()
                clear_handler_caches()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        clock_module.set_clock(previous_clock)


# --- driving handlers ---------------------------------------------------------------------------------------------
def handler_path(module: Any) -> str:
    return f"{module.__name__}.handler"


def invoke(env: AwsEnv, module: Any, event: dict[str, Any]) -> Any:
    """Call ``module.handler`` as Lambda would, recording its AWS calls under its handler path."""
    with env.recorder.running(handler_path(module)):
        return module.handler(event, CTX)


def task(env: AwsEnv, module: Any, state: dict[str, Any], retry: int = 0) -> dict[str, Any]:
    """A state-machine task: the handler gets ``{state, executionArn, retryCount}`` and returns the next state."""
    result: dict[str, Any] = invoke(env, module, task_event(state, retry))
    return result
