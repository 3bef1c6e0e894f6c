"""What happened in the local runtime: executions and their histories, the events put on the buses, queue contents.

- ``ExecutionTracker`` follows every execution of the stack's state machines (the states each entered, for
  ``ExecutionInfo.states`` and the ``execution.*`` progress notes) and answers ``LocalRuntime.executions()``;
- ``attempts_of(history, state)``: each attempt of a Task state, with its error;
- ``events_on(...)`` / ``orchestrator_events(...)``: the events put on a bus / the orchestrator's own;
- ``peek_queue(...)``: a queue's messages, read without consuming them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from offline.runtime.deploy import Clients
from offline.runtime.eventbridge import PublishedEvent
from offline.runtime.progress import ProgressReporter


@dataclass
class ExecutionInfo:
    """``DescribeExecution`` plus the states the execution went through."""

    arn: str
    name: str
    status: str
    input: Any  # JSON
    output: Any  # JSON
    start: datetime
    stop: datetime | None
    error: str | None
    cause: str | None
    states: list[str] = field(default_factory=list)

    @property
    def job_id(self) -> str | None:
        for candidate in (self.input, self.output):
            if isinstance(candidate, dict):
                job = candidate.get("job") if isinstance(candidate.get("job"), dict) else candidate
                value = job.get("jobId") if isinstance(job, dict) else None
                if isinstance(value, str):
                    return value
        return None

    @property
    def current_state(self) -> str | None:
        return self.states[-1] if self.states else None


class Attempt(TypedDict):
    """One attempt of a Task state (``LocalRuntime.state_attempts``)."""

    scheduled: datetime
    ended: datetime | None
    error: str | None  # the Step Functions error name
    cause: str | None


@dataclass
class _ExecutionView:
    arn: str
    status: str = "RUNNING"
    states: list[str] = field(default_factory=list)
    seen_events: int = 0


def loads(text: Any) -> Any:
    """JSON text decoded, or ``text`` as it is (not a string, not JSON, or nested too deep to decode)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


class ExecutionTracker:
    """The executions of ``state_machine_arns``, followed through their histories."""

    def __init__(
        self,
        *,
        clients: Clients,
        account: str,
        region: str,
        state_machine_arns: Sequence[str],
        progress: ProgressReporter,
    ) -> None:
        self.clients = clients
        self.account = account
        self.region = region
        self.state_machine_arns = list(state_machine_arns)
        self.progress = progress
        self._views: dict[str, _ExecutionView] = {}
        self._observing = threading.RLock()  # observed from the driver and from handlers (progress.sync)

    @property
    def seen(self) -> int:
        """How many executions have been observed so far."""
        return len(self._views)

    def list_executions(self, state_machine_arn: str, status: str | None = None) -> list[dict[str, Any]]:
        """``ListExecutions`` (every page), optionally only those with ``status``."""
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn}
        if status:
            kwargs["statusFilter"] = status
        out: list[dict[str, Any]] = []
        for page in self.clients("stepfunctions").get_paginator("list_executions").paginate(**kwargs):
            out.extend(page["executions"])
        return out

    def running_count(self) -> int:
        """Executions still running (read from moto's executing backend: no API round trip)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[self.account][self.region]
        count = 0
        for arn in self.state_machine_arns:
            for execution in list(backend.describe_state_machine(arn).executions):
                status = getattr(execution, "exec_status", None)
                if status is None or getattr(status, "value", status) == "RUNNING":
                    count += 1
        return count

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every running execution and wait (up to ``timeout``) until their workers have unwound."""
        sfn = self.clients("stepfunctions")
        for arn in self.state_machine_arns:
            for ex in self.list_executions(arn, "RUNNING"):
                with contextlib.suppress(Exception):
                    sfn.stop_execution(executionArn=ex["executionArn"], error="LocalRuntimeStopped")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running_count() > 0:
            time.sleep(0.02)
        time.sleep(0.05)  # let stopped workers unwind out of their last task

    def observe(self) -> None:
        """Follow every execution's state changes (for ``progress`` and ``ExecutionInfo.states``)."""
        with self._observing:
            self._observe()

    def _observe(self) -> None:
        for sm_arn in self.state_machine_arns:
            for ex in self.list_executions(sm_arn):
                arn = ex["executionArn"]
                view = self._views.get(arn)
                if view is None:
                    view = self._views[arn] = _ExecutionView(arn)
                    self.progress.emit(
                        "execution.start", f"execution {ex['name'][:8]} started", arn=arn, name=ex["name"]
                    )
                elif view.status != "RUNNING":
                    continue
                self._update(view, ex["status"])

    def _update(self, view: _ExecutionView, status: str) -> None:
        events = self.history(view.arn)
        for event in events[view.seen_events :]:
            if event["type"].endswith("StateEntered"):
                state = event["stateEnteredEventDetails"]["name"]
                view.states.append(state)
                self.progress.emit("execution.state", state, arn=view.arn, state=state)
        view.seen_events = len(events)
        if status != "RUNNING":
            view.status = status
            self.progress.emit("execution.end", status, arn=view.arn, status=status)

    def executions(self, status: str | None = None) -> list[ExecutionInfo]:
        """Every execution, oldest first, with the states each went through."""
        sfn = self.clients("stepfunctions")
        self.observe()
        out: list[ExecutionInfo] = []
        for sm_arn in self.state_machine_arns:
            for ex in self.list_executions(sm_arn, status):
                d = sfn.describe_execution(executionArn=ex["executionArn"])
                view = self._views.get(ex["executionArn"])
                out.append(
                    ExecutionInfo(
                        arn=d["executionArn"],
                        name=d.get("name", ""),
                        status=d["status"],
                        input=loads(d.get("input")),
                        output=loads(d.get("output")),
                        start=d.get("startDate"),
                        stop=d.get("stopDate"),
                        error=d.get("error"),
                        cause=d.get("cause"),
                        states=list(view.states) if view else [],
                    )
                )
        out.sort(key=lambda e: e.start)
        return out

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """``GetExecutionHistory`` (every page)."""
        events: list[dict[str, Any]] = []
        paginator = self.clients("stepfunctions").get_paginator("get_execution_history")
        for page in paginator.paginate(executionArn=execution_arn):
            events.extend(page["events"])
        return events


def attempts_of(history: Sequence[dict[str, Any]], state: str) -> list[Attempt]:
    """Each attempt of the Task state ``state`` in an execution's ``history``, in order. The gap between one
    attempt's ``ended`` and the next one's ``scheduled`` is the ``Retry`` back-off Step Functions slept."""
    attempts: list[Attempt] = []
    current: str | None = None
    for e in history:
        kind = e["type"]
        if kind.endswith("StateEntered"):
            current = e["stateEnteredEventDetails"]["name"]
        elif kind.endswith("StateExited"):
            current = None
        if current != state:
            continue
        if kind in ("TaskScheduled", "LambdaFunctionScheduled"):
            attempts.append({"scheduled": e["timestamp"], "ended": None, "error": None, "cause": None})
        elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded") and attempts:
            attempts[-1]["ended"] = e["timestamp"]
        elif kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut") and attempts:
            details = (
                e.get("taskFailedEventDetails")
                or e.get("lambdaFunctionFailedEventDetails")
                or e.get("taskTimedOutEventDetails")  # a callback wait that timed out: States.Timeout
                or {}
            )
            attempts[-1]["ended"] = e["timestamp"]
            attempts[-1]["error"] = details.get("error")
            attempts[-1]["cause"] = details.get("cause")
    return attempts


def events_on(published: Sequence[PublishedEvent], bus: str | None = None) -> list[dict[str, Any]]:
    """The events (AWS envelope shape) of ``published``, optionally only those of one bus."""
    return [p.event for p in published if bus is None or p.bus == bus]


def orchestrator_events(
    published: Sequence[PublishedEvent], *, bus: str, source: str, detail_type: str | None = None
) -> list[dict[str, Any]]:
    """The orchestrator's own events (``source``) on its custom bus, oldest first, optionally of one detail-type."""
    return [
        e
        for e in events_on(published, bus)
        if e["source"] == source and (detail_type is None or e["detail-type"] == detail_type)
    ]


def peek_queue(url: str, *, account: str, region: str) -> list[dict[str, Any]]:
    """Every message of the queue at ``url``, read from moto's backend without receiving (or consuming) it."""
    from moto.sqs.models import sqs_backends

    q = sqs_backends[account][region].get_queue(url.rsplit("/", 1)[-1])
    return [
        {
            "MessageId": m.id,
            "Body": m.body,
            "body": loads(m.body),
            "MessageAttributes": {
                k: v.get("string_value", v.get("StringValue")) for k, v in (m.message_attributes or {}).items()
            },
            "ApproximateReceiveCount": m.approximate_receive_count,
        }
        for m in list(q._messages)
    ]
