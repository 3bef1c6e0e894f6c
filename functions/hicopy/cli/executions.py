"""A job's progress and outcome, read from its Step Functions execution (executions are named by job ID).

The execution history holds the workflow state every step received (``plan.chunkCount``, ``chunkIndex``, the
completed chunks and their status checks); the events after the latest step was entered are that step's attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from hicopy.cli.domain import describe_error
from hicopy.cli.output import duration, shorten, timestamp
from hicopy.cli.stack import Stack

NOT_FOUND = "NOT_FOUND"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
UNFINISHED = (RUNNING, NOT_FOUND, "PENDING_REDRIVE")
_SCHEDULED = ("LambdaFunctionScheduled", "TaskScheduled")
_FAILED = ("LambdaFunctionFailed", "LambdaFunctionTimedOut", "TaskFailed", "TaskTimedOut")
_MISSING = ("ExecutionDoesNotExist", "ResourceNotFound", "ResourceNotFoundException")


@dataclass
class JobStatus:
    job_id: str
    status: str  # the execution's status, or NOT_FOUND
    execution_arn: str | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    step: str | None = None  # the step running now
    attempts: int = 0  # attempts of that step so far
    last_error: str | None = None  # the error its last failed attempt raised (other than "still copying")
    chunk: int | None = None  # 1-based: the chunk being copied, or the one that failed
    chunks: int | None = None
    chunks_completed: int = 0
    status_checks: int = 0
    reason: dict[str, str] | None = None  # {code, message} of a job that did not succeed
    job: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    destination: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        end = self.stopped.timestamp() if self.stopped is not None else now
        return end - self.started.timestamp()

    def progress_key(self) -> tuple[Any, ...]:
        """What a watcher reports a change of."""
        return (
            self.status,
            self.step,
            self.attempts,
            self.last_error,
            self.chunk,
            self.chunks_completed,
            self.status_checks,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "status": self.status,
            "executionArn": self.execution_arn,
            "startedAt": timestamp(self.started),
            "stoppedAt": timestamp(self.stopped),
            "step": self.step,
            "stepAttempts": self.attempts,
            "lastError": self.last_error,
            "chunk": self.chunk,
            "chunks": self.chunks,
            "chunksCompleted": self.chunks_completed,
            "statusChecks": self.status_checks,
            "reason": self.reason,
            "destination": self.destination,
            "correlationId": self.job.get("correlationId"),
            "trigger": self.trigger or None,
        }

    def line(self, now: float) -> str:
        """One line: what the job is doing, or how it ended."""
        parts = [self.job_id, self.status]
        if self.status == NOT_FOUND:
            parts.append("no execution yet (queued, rejected or never sent: see `hicopy backlog` and `hicopy dlq`)")
            return "  ".join(parts)
        if self.status == RUNNING:
            parts.append(self.step or "starting")
            if self.attempts > 1:
                parts.append(f"attempt {self.attempts}" + (f" after {self.last_error}" if self.last_error else ""))
        if self.chunks:
            done = self.status == SUCCEEDED or self.chunk is None
            parts.append(
                f"{self.chunks_completed}/{self.chunks} chunks" if done else f"chunk {self.chunk}/{self.chunks}"
            )
        parts.append(f"{self.status_checks} status check{'s' if self.status_checks != 1 else ''}")
        if self.status == SUCCEEDED and self.destination:
            parts.append(f"-> {self.destination.get('imageSetId')} v{self.destination.get('versionId')}")
        parts.append(duration(self.elapsed(now)))
        if self.reason:
            parts.append(f"{self.reason['code']}: {shorten(self.reason['message'], 160)}")
        return "  ".join(parts)


def describe_execution(stack: Stack, job_id: str) -> dict[str, Any] | None:
    """DescribeExecution of the job's execution; None when there is none."""
    try:
        described: dict[str, Any] = stack.client("stepfunctions").describe_execution(
            executionArn=stack.execution_arn(job_id)
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise
    return described


def read_status(stack: Stack, job_id: str) -> JobStatus:
    sfn = stack.client("stepfunctions")
    arn = stack.execution_arn(job_id)
    described = describe_execution(stack, job_id)
    if described is None:
        return JobStatus(job_id, NOT_FOUND)
    execution_input = _loads(described.get("input")) or {}
    status = JobStatus(
        job_id,
        described["status"],
        arn,
        started=described.get("startDate"),
        stopped=described.get("stopDate"),
        job=dict(execution_input.get("job") or {}),
        trigger=dict(execution_input.get("trigger") or {}),
    )
    entered, since = _latest_step(sfn, arn)
    state: dict[str, Any] = execution_input
    if status.status == SUCCEEDED:
        state = _loads(described.get("output")) or state
    elif entered is not None:
        state = _loads(_details(entered).get("input")) or state
    plan = state.get("plan") or {}
    completed = state.get("completed") or []
    status.chunks = plan.get("chunkCount")
    status.chunks_completed = len(completed)
    status.status_checks = sum(int(c.get("statusChecks", 0)) for c in completed)
    status.destination = state.get("destination") or (state.get("submission") or {}).get("destination")
    if status.chunks and status.status != SUCCEEDED:
        status.chunk = min(int(state.get("chunkIndex", 0)) + 1, status.chunks)
    if status.status == RUNNING and entered is not None:
        status.step = _details(entered).get("name")
        scheduled = [e for e in since if e["type"] in _SCHEDULED]
        failures = [_details(e).get("error") for e in since if e["type"] in _FAILED]
        status.attempts = len(scheduled)
        status.last_error = next((e for e in reversed(failures) if e), None)
        # The current chunk's checks so far: AwaitCopy records them in the state (``awaiting``) between its waits.
        status.status_checks += int((state.get("awaiting") or {}).get("checks", 0))
    if status.finished and status.status != SUCCEEDED:
        status.reason, checks = _reason(described)
        status.status_checks += checks
    return status


def _reason(described: dict[str, Any]) -> tuple[dict[str, str], int]:
    """The failure's reason as the failure event gives it, and the status checks of the failed chunk."""
    error, cause = described.get("error"), described.get("cause")
    if not error:
        return {"code": described["status"], "message": cause or f"the execution ended {described['status']}"}, 0
    code, message, details = describe_error(str(error), cause)
    return {"code": code, "message": message}, int(details.get("statusChecks", 0) or 0)


def _latest_step(sfn: Any, arn: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The newest ``...StateEntered`` event, and the events after it (oldest first)."""
    after: list[dict[str, Any]] = []
    for event in _newest_first(sfn, arn):
        if event["type"].endswith("StateEntered"):
            return event, after[::-1]
        after.append(event)
    return None, after[::-1]


def _newest_first(sfn: Any, arn: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"executionArn": arn, "reverseOrder": True, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        # Sorted by event id: an API that ignores reverseOrder (moto) answers oldest first.
        yield from sorted(page["events"], key=lambda e: int(e["id"]), reverse=True)
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def _loads(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def describe(status: JobStatus, now: float) -> str:
    """The ``status`` command's text: one fact per line."""
    if status.status == NOT_FOUND:
        return status.line(now)
    job = status.job
    rows: list[tuple[str, Any]] = [
        ("job", status.job_id),
        ("status", status.status),
        ("execution", status.execution_arn),
        ("started", timestamp(status.started)),
        ("stopped", timestamp(status.stopped)),
        ("duration", duration(status.elapsed(now))),
        ("trigger", status.trigger.get("type")),
        ("correlationId", job.get("correlationId")),
        ("source", (job.get("source") or {}).get("imageSetId")),
        ("destination", _destination(status)),
    ]
    if status.status == RUNNING:
        attempt = f" (attempt {status.attempts})" if status.attempts > 1 else ""
        rows.append(("step", f"{status.step or 'starting'}{attempt}"))
        if status.last_error:
            rows.append(("retrying after", status.last_error))
    if status.chunks:
        progress = f"{status.chunks_completed} of {status.chunks} completed"
        if status.chunk is not None:
            progress += f"; {'copying' if status.status == RUNNING else 'failed at'} chunk {status.chunk}"
        rows.append(("chunks", progress))
    rows.append(("status checks", status.status_checks))
    if status.reason:
        rows.append(("reason", f"{status.reason['code']}: {status.reason['message']}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows if v not in (None, ""))


def _destination(status: JobStatus) -> str:
    dest = status.destination
    if dest:
        return f"{dest.get('imageSetId')} (version {dest.get('versionId')})"
    wanted = (status.job.get("destination") or {}).get("imageSetId")
    return wanted or ("a new primary image set" if status.job.get("promoteToPrimary") else "a new image set")
