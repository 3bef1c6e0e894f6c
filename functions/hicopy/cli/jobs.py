"""Reading jobs (a file, stdin, inline JSON or an ``s3://`` object), checking them with the consumer's own model, and
sending them to the job queue."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from hicopy.cli.domain import JobRejected, SystemClock, WorkflowState, accept, loads_strict, parse_job
from hicopy.cli.stack import Stack

# SendMessageBatch: at most 10 entries and 256 KiB in all (bodies and attributes).
BATCH_ENTRIES = 10
BATCH_BYTES = 256 * 1024


class InputError(Exception):
    """A job source cannot be read at all (missing file, S3 error)."""


@dataclass(frozen=True)
class RawJob:
    where: str  # "jobs.jsonl line 3", "jobs.json [2]", "jobs.json"
    data: Any = None
    problem: str | None = None  # the text at ``where`` is not JSON


@dataclass(frozen=True)
class CheckedJob:
    where: str
    job: dict[str, Any] | None = None  # the job as it will be sent (with its jobId)
    state: WorkflowState | None = None  # what the consumer would start the execution with
    problem: str | None = None
    attributes: dict[str, str] | None = None  # SQS message attributes (the import trigger of a planned job)

    @property
    def job_id(self) -> str | None:
        return None if self.job is None else str(self.job["jobId"])

    def as_json(self) -> dict[str, Any]:
        return {"from": self.where, "jobId": self.job_id, "valid": self.problem is None, "problem": self.problem}


# --- reading ----------------------------------------------------------------------------------------------------
def read_sources(sources: Sequence[str], stack: Stack, stdin: TextIO | None = None) -> list[RawJob]:
    """Every job of every source, in order. A source is a path, ``-`` (stdin), ``s3://bucket/key`` or inline JSON
    (text starting with ``{`` or ``[``); each holds one job, a JSON array of jobs, or JSON Lines."""
    jobs: list[RawJob] = []
    for source in sources:
        jobs.extend(parse_text(_read(source, stack, stdin), _name(source)))
    return jobs


def _name(source: str) -> str:
    if source.lstrip().startswith(("{", "[")):
        return "argument"
    return "stdin" if source == "-" else source


def _read(source: str, stack: Stack, stdin: TextIO | None) -> str:
    if source.lstrip().startswith(("{", "[")):
        return source
    if source == "-":
        return (stdin or sys.stdin).read()
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise InputError(f"{source}: expected s3://bucket/key")
        try:
            body = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise InputError(f"{source}: {exc}") from exc
        return bytes(body).decode("utf-8")
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{source}: {exc.strerror or exc}") from exc


def parse_text(text: str, name: str) -> list[RawJob]:
    """One job, a JSON array of jobs, or JSON Lines (one job per line; blank lines are skipped)."""
    try:
        value = loads_strict(text)
    except ValueError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        jobs = []
        for n, line in lines:
            try:
                jobs.append(RawJob(f"{name} line {n}", loads_strict(line)))
            except ValueError as exc:
                jobs.append(RawJob(f"{name} line {n}", problem=f"not valid JSON: {exc}"))
        if not lines or jobs[0].problem is not None:  # not JSON Lines either: one broken document
            return [RawJob(name, problem=f"not valid JSON: {whole_error}")]
        return jobs
    if isinstance(value, list):
        return [RawJob(f"{name} [{i}]", item) for i, item in enumerate(value)]
    return [RawJob(name, value)]


# --- checking ---------------------------------------------------------------------------------------------------
def new_job_id(now: float) -> str:
    """A fresh job ID: ``cli-<UTC time>-<random>``."""
    return f"cli-{datetime.fromtimestamp(now, UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def check_jobs(raw: Iterable[RawJob], now: float) -> list[CheckedJob]:
    """Validate each job as the queue consumer will, giving a job ID to those without one."""
    checked: list[CheckedJob] = []
    seen: dict[str, str] = {}
    for item in raw:
        result = check_job(item, now)
        job_id = result.job_id
        if job_id is not None and result.problem is None:
            if job_id in seen:
                problem = f"jobId {job_id} is also the ID of {seen[job_id]} (a job ID runs once)"
                result = CheckedJob(item.where, result.job, problem=problem)
            else:
                seen[job_id] = item.where
        checked.append(result)
    return checked


def check_job(item: RawJob, now: float, attributes: dict[str, str] | None = None) -> CheckedJob:
    if item.problem is not None:
        return CheckedJob(item.where, problem=item.problem)
    data = item.data
    if isinstance(data, dict) and "jobId" not in data:
        data = {"jobId": new_job_id(now), **data}
    try:
        job = parse_job(data)  # a whole event or any other shape is refused here, as a job
        body = json.dumps(data, separators=(",", ":"))
        accepted = accept(body, message_id=str(job.jobId), attributes=attributes or {}, clock=SystemClock())
    except JobRejected as exc:
        return CheckedJob(item.where, data if isinstance(data, dict) else None, problem=exc.message)
    return CheckedJob(item.where, data, accepted.state, attributes=attributes)


# --- sending ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    job_id: str
    where: str
    message_id: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "from": self.where, "messageId": self.message_id, "error": self.error}


def send_jobs(stack: Stack, jobs: Sequence[CheckedJob]) -> list[Sent]:
    """Send valid jobs to the job queue in batches; each result says whether SQS took it."""
    results: list[Sent] = []
    for batch in _batches([j for j in jobs if j.problem is None and j.job is not None]):
        entries = [_entry(n, j) for n, j in enumerate(batch)]
        answer = stack.client("sqs").send_message_batch(QueueUrl=stack.job_queue_url, Entries=entries)
        ok = {e["Id"]: e["MessageId"] for e in answer.get("Successful", [])}
        failed = {e["Id"]: f"{e.get('Code', '')}: {e.get('Message', '')}" for e in answer.get("Failed", [])}
        for n, j in enumerate(batch):
            results.append(Sent(str(j.job_id), j.where, ok.get(str(n)), failed.get(str(n))))
    return results


def _entry(n: int, job: CheckedJob) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": str(n), "MessageBody": json.dumps(job.job, separators=(",", ":"))}
    if job.attributes:
        entry["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in job.attributes.items()}
    return entry


def _size(entry: dict[str, Any]) -> int:
    attributes = entry.get("MessageAttributes", {})
    return len(entry["MessageBody"].encode()) + sum(
        len(k.encode()) + len(v["StringValue"].encode()) + 6 for k, v in attributes.items()
    )


def _batches(jobs: list[CheckedJob]) -> Iterable[list[CheckedJob]]:
    batch: list[CheckedJob] = []
    size = 0
    for job in jobs:
        body = _size(_entry(0, job))
        if batch and (len(batch) == BATCH_ENTRIES or size + body > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(job)
        size += body
    if batch:
        yield batch
