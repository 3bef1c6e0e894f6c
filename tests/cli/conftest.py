"""The ``hicopy`` CLI against the embedded local runtime: the real stack, state machine, handlers and emulator.

``cli`` runs one command in-process with a ``Stack`` built from the runtime (its clients, queue URLs, bus and state
machine); while a command waits (``watch``, ``submit --wait``), its sleep drives the runtime instead. The runtime is
shared by the tests of a module, so each test looks only at its own jobs, image sets and messages.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hicopy.cli import main
from hicopy.cli.stack import Stack
from offline.runtime import LocalRuntime
from tests.e2e.helpers import terminal_events

FAST = 0.01  # 100 virtual seconds per real second


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def local_stack(rt: LocalRuntime) -> Stack:
    """The runtime's stack, as the CLI sees a deployed one; waiting pumps the runtime."""

    def sleep(seconds: float) -> None:
        rt.pump()
        time.sleep(0.01)

    [deployed] = rt.client("cloudformation").describe_stacks()["Stacks"]
    return Stack(
        name=deployed["StackName"],
        job_queue_url=rt.deployment.job_queue_url,
        dlq_url=rt.deployment.dlq_url,
        event_bus_name=rt.deployment.event_bus_name,
        state_machine_arn=rt.deployment.state_machine_arn,
        client=rt.client,
        sleep=sleep,
    )


CLI = Callable[..., Run]


def make_cli(rt: LocalRuntime) -> CLI:
    stack = local_stack(rt)

    def run(*argv: str, stdin: str = "", stdout: io.StringIO | None = None) -> Run:
        out, err = stdout if stdout is not None else io.StringIO(), io.StringIO()
        code = main(list(argv), stack=stack, stdout=out, stderr=err, stdin=io.StringIO(stdin))
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(scope="module")
def rt() -> Iterator[LocalRuntime]:
    """One runtime per test module (a start costs about a second); each test uses its own job IDs and image sets."""
    with LocalRuntime(time_scale=FAST) as runtime:
        yield runtime


@pytest.fixture
def cli(rt: LocalRuntime) -> Iterator[CLI]:
    yield make_cli(rt)
    rt.run_until_idle(timeout=60)  # nothing a test started runs into the next one


def events_of(rt: LocalRuntime, *job_ids: str) -> dict[str, dict[str, Any]]:
    """The terminal event of each of these jobs (schema-checked), by job ID."""
    return {e["detail"]["jobId"]: e for e in terminal_events(rt) if e["detail"].get("jobId") in job_ids}


def statuses(rt: LocalRuntime, *job_ids: str) -> dict[str, str]:
    """The execution status of each of these jobs that has an execution."""
    return {e.name: e.status for e in rt.executions() if e.name in job_ids}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A Lambda invocation that ends before adding a metric makes Powertools warn at flush; in AWS that is a log line.
    quiet = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
    for item in items:
        if "tests/cli/" in str(item.path):
            item.add_marker(quiet)
