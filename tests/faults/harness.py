"""The fault-injection harness: seeded batches of jobs, fault schedules, and the invariant checker.

A scenario is one fresh ``LocalRuntime`` (the real template, state machine and handlers), one seeded batch of jobs of
mixed kinds (whole copy, subset, merge, chunked, invalid, sometimes a duplicate message) and one fault schedule. The
schedule injects faults at two places:

- **the HealthImaging emulator** (``inject_fault``, ``fail_next_copy``, ``lock``), usually just before a chosen
  handler runs (``LambdaRunner.on_start``), so that the fault lands while a job is in that step;
- **botocore**, in every handler's clients: ``BotoFaults`` registers ``before-call``/``after-call`` handlers on the
  process's default boto3 session (the one the handlers' ``boto3.client(...)`` use; the runtime's own clients use
  another session). A ``before-call`` fault replaces the call (the request never reaches moto), an ``after-call``
  fault happens once moto *did* the call (the side effect is real, the caller sees an error).

After ``run_until_idle``, ``check`` returns every violation of the suite's invariant (see ``check``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError

from hicopy.contract import FAILED, REJECTED, SUCCEEDED
from hicopy.contract import TERMINAL_DETAIL_TYPES as TERMINAL
from hicopy.errors import ExecutionAborted, ExecutionTimedOut, SubmitOutcomeUnknown
from offline.runtime import LocalRuntime
from tests.support.contracts import assert_valid_event

# Failure codes that may follow a completed copy truthfully: Submit could not prove the copy its own, or the
# execution was stopped or timed out (the event then says so; the copy may have ended meanwhile).
UNKNOWN_OUTCOME_CODES = frozenset({SubmitOutcomeUnknown.code, ExecutionAborted.code, ExecutionTimedOut.code})

SOAK = os.environ.get("HICOPY_SOAK") == "1"
SEEDS = 8 if SOAK else 2  # scenarios per fault kind
JOBS = (6, 10) if SOAK else (3, 5)  # jobs per scenario (min, max)
TIME_SCALE = 0.004  # 250 virtual seconds per real second
COPY_DURATION = 8.0  # virtual seconds a copy stays LOCKED
MAX_FRAMES = 6  # maxFramesPerCopy of the scenarios' stack: chunked jobs are small
IDLE_TIMEOUT = 120.0 if SOAK else 60.0
# receiptWindowSeconds: handler time is real time here, and 250 virtual seconds pass per real second, so a cold start
# of the receipt function (0.4-1.4 s real, measured) or a wait for the runtime's one handler lock would outlast the
# default window of 120 virtual seconds (0.5 s real) and let a second put through. 1,800 s (7 s real) keeps the
# margin the default has in AWS (a receipt within about a second); the window's branches are unit-tested.
# deleteAfterConsolidate on: a sender's forged trigger (below) asks for its source's deletion, which nothing may grant
CONFIG = {"maxFramesPerCopy": MAX_FRAMES, "receiptWindowSeconds": 1800, "deleteAfterConsolidate": True}
# What any queue sender may write (issue #12 item 1): an import trigger asking for the source's deletion. Sent with
# about a third of the valid jobs (chosen by job ID, so that the seeded randomness is unchanged).
FORGED_TRIGGER = json.dumps({"type": "import", "importJobId": "0" * 32, "deleteSourceAfterCopy": True})

# Retry budgets of the state machine (infra/state_machine.py): a burst of at most this many faults per task state
# entry is always absorbed.
TRANSIENT_RETRIES = 6
MAX_RECEIVES = 5  # the job queue's maxReceiveCount

SUMMARY_DIR = Path("build/fault-injection")
RECORDS = SUMMARY_DIR / "records"


@dataclass
class BatchSettings:
    """What ``make_batch``/``send_batch`` draw from: the batch size range and the minimum share of valid jobs sent
    twice. The randomized soak (``tests/faults/soak.py``) varies both per run; pytest scenarios keep the defaults."""

    jobs: tuple[int, int] = JOBS
    duplicates: float = 0.0


BATCH = BatchSettings()
# When set (the randomized soak), ``record`` appends each scenario's record here instead of writing a file.
RECORD_SINK: list[dict[str, Any]] | None = None


# ================================================================================================ jobs


@dataclass
class Job:
    """One message of the batch. ``job_id`` is None for an invalid message (identified by its message id)."""

    kind: str  # whole | subset | merge | chunked | invalid
    body: Any  # dict (JSON-encoded when sent) or raw string
    job_id: str | None = None
    source_id: str | None = None
    destination_id: str | None = None
    chunks: int = 1  # expected chunk count
    message_ids: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.job_id is not None


def _frames(series: int, instances: int, frames: int) -> int:
    return series * instances * frames


def make_batch(rt: LocalRuntime, rng: random.Random, *, kinds: tuple[str, ...] | None = None) -> list[Job]:
    """A seeded batch of ``JOBS`` jobs of mixed kinds, each valid job on its own source image set."""
    ds = rt.datastore_id
    n = rng.randint(*BATCH.jobs)
    pool = kinds or ("whole", "whole", "subset", "merge", "merge", "chunked", "chunked", "invalid")
    jobs: list[Job] = []
    shared_destination: Any = None
    for i in range(n):
        kind = rng.choice(pool)
        if kind == "invalid" and i == n - 1 and not any(j.valid for j in jobs) and set(pool) != {"invalid"}:
            kind = next(k for k in pool if k != "invalid")  # at least one valid job: its faults are the scenario
        job_id = f"j{i}-{kind}-{rng.randrange(16**8):08x}"  # unique across a soak's runs on one runtime
        if kind == "invalid":
            body = rng.choice(
                [
                    "{not json",
                    {"datastoreId": ds, "source": {"imageSetId": "NOT-AN-ID"}},
                    {"datastoreId": ds, "source": {"imageSetId": "0" * 32}, "colour": "blue"},
                    {"jobId": "bad id!", "datastoreId": ds, "source": {"imageSetId": "0" * 32}},
                ]
            )
            jobs.append(Job(kind, body))
            continue
        series, per_series = rng.randint(1, 2), rng.randint(1, 3)
        if kind == "chunked":
            # chunk 0 opens every series with its first instance: series x frames must fit one copy
            frames = rng.randint(2, MAX_FRAMES // series)
            per_series = max(per_series, MAX_FRAMES // (series * frames) + 1)
            src = rt.seed_image_set(series=series, instances_per_series=per_series, frames_per_instance=frames)
            total = _frames(series, per_series, frames)
            body: dict[str, Any] = {"jobId": job_id, "datastoreId": ds, "source": {"imageSetId": src.image_set_id}}
            job = Job(kind, body, job_id, src.image_set_id, chunks=0 if total > MAX_FRAMES else 1)
        elif kind == "merge":
            if shared_destination is None or rng.random() < 0.6:
                shared_destination = rt.seed_image_set(series=1, instances_per_series=rng.randint(1, 2))
            dest = shared_destination
            src = rt.seed_image_set(
                series=series, instances_per_series=per_series, study_uid=dest.study_uid, is_primary=False
            )
            body = {
                "jobId": job_id,
                "datastoreId": ds,
                "source": {"imageSetId": src.image_set_id},
                "destination": {"imageSetId": dest.image_set_id},
                "force": True,
            }
            job = Job(kind, body, job_id, src.image_set_id, dest.image_set_id)
        else:
            src = rt.seed_image_set(series=series, instances_per_series=per_series)
            body = {"jobId": job_id, "datastoreId": ds, "source": {"imageSetId": src.image_set_id}}
            if kind == "subset":
                if series > 1 and rng.random() < 0.5:
                    body["series"] = [src.series_uids[rng.randrange(series)]]
                else:
                    every = [uid for s in src.series_uids for uid in src.instances[s]]
                    body["instances"] = rng.sample(every, rng.randint(1, len(every)))
            job = Job(kind, body, job_id, src.image_set_id)
        jobs.append(job)
    return jobs


def send_batch(rt: LocalRuntime, jobs: list[Job], rng: random.Random, *, duplicates: float = 0.0) -> None:
    """Send every message; with probability ``duplicates`` (at least ``BATCH.duplicates``) a valid job is sent twice
    (same job ID)."""
    duplicates = max(duplicates, BATCH.duplicates)
    for job in jobs:
        copies = 2 if job.valid and rng.random() < duplicates else 1
        attributes = {"hicopyTrigger": FORGED_TRIGGER} if forges_trigger(job) else None
        for _ in range(copies):
            job.message_ids.append(rt.send_job(job.body, attributes))


def forges_trigger(job: Job) -> bool:
    return job.valid and zlib.crc32((job.job_id or "").encode()) % 3 == 0


# ================================================================================================ faults


class Crash(Exception):
    """A handler dying in a way that is not an AWS error (e.g. the Lambda sandbox timing out)."""

    def __init__(self, message: str, lambda_error_type: str = "Sandbox.Timedout") -> None:
        super().__init__(message)
        self.lambda_error_type = lambda_error_type


def client_error(code: str, operation: str, message: str = "injected", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def read_timeout() -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url="https://injected.amazonaws.com/")


Action = Callable[[dict[str, Any], Any], Any]  # (api params, parsed response or None) -> response or None


@dataclass
class BotoRule:
    """``when(params)`` chooses the calls; ``action`` runs ``before`` the call (may return a fake parsed response
    or raise) or ``after`` it (the call happened; raising loses its response). ``times`` bounds the hits."""

    name: str
    event: str  # before | after | arm (runs before the call, which then goes ahead)
    service: str  # botocore service id (hyphenized): eventbridge, sfn, dynamodb, medical-imaging
    operation: str
    when: Callable[[dict[str, Any]], bool]
    action: Action
    times: int = 1
    hits: int = 0
    key: str = ""  # what the rule is planned for (e.g. a job ID): per-task accounting in ``BotoFaults.by_task``


# The task a handler thread is running: (construct id, job id, chunk), set by ``StepHooks`` before every handler
# invocation (the handler runs on the thread that starts it). Faults keyed by it land on that task's own calls.
_TASK = threading.local()
TaskIdentity = tuple[str, str | None, int]


def current_task() -> TaskIdentity | None:
    return getattr(_TASK, "identity", None)


@dataclass
class CallFaults:
    """``times`` faults with error ``code`` on the first ``times`` calls of ``operation`` that the invocations of one
    task (``identity``: construct id, job id, chunk) make. Unlike a queue of faults in the emulator, taken by whichever
    thread calls next, the same calls fail whatever order the executions' threads run in (issue #12)."""

    name: str
    identity: TaskIdentity
    service: str
    operation: str
    code: str
    times: int
    status: int = 500
    hits: int = 0


class BotoFaults:
    """Fault rules on the default boto3 session's event system: every client a handler creates afterwards sees them.

    One stable dispatcher per event, registered once per runtime; ``close()`` unregisters it.
    """

    def __init__(self) -> None:
        self.rules: list[BotoRule] = []
        self.call_faults: list[CallFaults] = []
        self._lock = threading.Lock()
        self._session: Any = None
        self.injected: Counter[str] = Counter()
        # Where each fault landed: "<name>@<task identity or rule key>" -> faults (test_determinism compares these).
        self.by_task: Counter[str] = Counter()
        # (source, destination, destination version) of every CopyImageSet the service accepted
        self.copies: list[tuple[str, str, str]] = []

    def install(self) -> BotoFaults:
        import boto3

        self._session = boto3._get_default_session()  # inside the runtime's mock: a fresh session for the handlers
        events = self._session.events
        events.register("before-parameter-build", self._remember, unique_id="hicopy-faults-params")
        events.register("before-call", self._before, unique_id="hicopy-faults-before")
        events.register("after-call", self._after, unique_id="hicopy-faults-after")
        return self

    def close(self) -> None:
        if self._session is not None:
            events = self._session.events
            events.unregister("before-parameter-build", unique_id="hicopy-faults-params")
            events.unregister("before-call", unique_id="hicopy-faults-before")
            events.unregister("after-call", unique_id="hicopy-faults-after")
            self._session = None

    def add(self, rule: BotoRule) -> BotoRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def add_call_faults(self, faults: CallFaults) -> CallFaults:
        with self._lock:
            self.call_faults.append(faults)
        return faults

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.call_faults.clear()

    def _call_fault(self, event_name: str) -> CallFaults | None:
        _, service, operation = event_name.split(".", 2)
        identity = current_task()
        if identity is None:
            return None
        with self._lock:
            for faults in self.call_faults:
                if (
                    faults.identity == identity
                    and faults.service == service
                    and faults.operation == operation
                    and faults.hits < faults.times
                ):
                    faults.hits += 1
                    self.injected[faults.name] += 1
                    self.by_task[f"{faults.name}@{faults.identity}"] += 1
                    return faults
        return None

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["hicopy_params"] = params

    def _match(self, event: str, event_name: str, context: dict[str, Any]) -> BotoRule | None:
        _, service, operation = event_name.split(".", 2)
        params = context.get("hicopy_params") or {}
        with self._lock:
            for rule in self.rules:
                if (
                    rule.event == event
                    and rule.service == service
                    and rule.operation == operation
                    and rule.hits < rule.times
                    and rule.when(params)
                ):
                    rule.hits += 1
                    self.injected[rule.name] += 1
                    self.by_task[f"{rule.name}@{rule.key or '*'}"] += 1
                    return rule
        return None

    def _before(self, event_name: str, context: dict[str, Any], **_: Any) -> Any:
        planned = self._call_fault(event_name)
        if planned is not None:
            raise client_error(planned.code, planned.operation, "injected", status=planned.status)
        armed = self._match("arm", event_name, context)  # runs, then the call goes ahead
        if armed is not None:
            armed.action(context.get("hicopy_params") or {}, None)
            return None
        rule = self._match("before", event_name, context)
        if rule is None:
            return None
        parsed = rule.action(context.get("hicopy_params") or {}, None)
        return (AWSResponse("https://injected/", 200, {}, None), parsed)

    def _after(self, event_name: str, context: dict[str, Any], http_response: Any, parsed: Any, **_: Any) -> None:
        if getattr(http_response, "status_code", 500) >= 300:
            return
        if event_name == "after-call.medical-imaging.CopyImageSet" and isinstance(parsed, dict):
            params = context.get("hicopy_params") or {}
            dest = parsed.get("destinationImageSetProperties") or {}
            copy = (str(params.get("sourceImageSetId")), str(dest.get("imageSetId")), str(dest.get("latestVersionId")))
            with self._lock:
                self.copies.append(copy)
        rule = self._match("after", event_name, context)
        if rule is not None:
            rule.action(context.get("hicopy_params") or {}, parsed)


class StepHooks:
    """Callbacks run just before a handler of a given construct id starts (``LambdaRunner.on_start``)."""

    def __init__(self, rt: LocalRuntime) -> None:
        self.hooks: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        assert rt.runner is not None
        previous = rt.runner.on_start
        self._lock = threading.Lock()

        def on_start(spec: Any, event: Any) -> None:
            if previous is not None:
                previous(spec, event)
            payload = event if isinstance(event, dict) else {}
            _TASK.identity = (spec.construct_id, task_job_id(payload), task_chunk(payload))
            for construct_id, hook in list(self.hooks):
                if construct_id == spec.construct_id and isinstance(event, dict):
                    with self._lock:
                        hook(event)

        rt.runner.on_start = on_start

    def before(self, construct_id: str, hook: Callable[[dict[str, Any]], None]) -> None:
        self.hooks.append((construct_id, hook))


def task_job_id(event: dict[str, Any]) -> str | None:
    state = event.get("state") if isinstance(event.get("state"), dict) else None
    job = (state or {}).get("job") or {}
    value = job.get("jobId")
    return value if isinstance(value, str) else None


def task_chunk(event: dict[str, Any]) -> int:
    state = event.get("state") if isinstance(event.get("state"), dict) else {}
    return int(state.get("chunkIndex") or 0)


# ================================================================================================ scenario


@dataclass
class Scenario:
    """One run on a (shared, warm) runtime: the batch, the fault hooks, what was injected, and where the runtime's
    records stood when the scenario began (so that ``check`` looks at this scenario only)."""

    kind: str
    seed: int
    rt: LocalRuntime
    rng: random.Random
    boto: BotoFaults
    steps: StepHooks
    jobs: list[Job] = field(default_factory=list)
    emulator_faults: Counter[str] = field(default_factory=Counter)  # what the schedule queued in the emulator
    seconds: float = 0.0
    events_before: int = 0
    calls_before: int = 0
    batches_before: int = 0
    copies_before: int = 0
    boto_before: Counter[str] = field(default_factory=Counter)

    def inject(self, operation: str, code: str, times: int = 1) -> None:
        if times > 0:
            self.rt.emulator.inject_fault(operation, code, times=times)
            self.emulator_faults[f"{operation}:{code}"] += times

    @property
    def valid_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.valid]

    def job(self, job_id: str | None) -> Job | None:
        return next((j for j in self.jobs if j.job_id == job_id), None)

    def run(self, timeout: float = IDLE_TIMEOUT) -> None:
        t0 = time.monotonic()
        self.rt.run_until_idle(timeout=timeout)
        self.seconds = time.monotonic() - t0

    def batches(self) -> list[Any]:
        return self.rt.sqs_batches()[self.batches_before :]


@dataclass
class Harness:
    """One runtime per test module (per pytest-xdist worker): warm handler containers make a scenario cost its run
    time only. Fault hooks are installed once, before any handler creates a client; scenarios add and clear rules."""

    rt: LocalRuntime
    boto: BotoFaults
    steps: StepHooks

    @classmethod
    def start(cls) -> Harness:
        rt = LocalRuntime(time_scale=TIME_SCALE, copy_duration=COPY_DURATION, config_overrides=CONFIG)
        rt.start()
        try:
            return cls(rt, BotoFaults().install(), StepHooks(rt))
        except BaseException:
            rt.stop()
            raise

    def stop(self) -> None:
        self.boto.close()
        self.rt.stop()

    @contextlib.contextmanager
    def scenario(self, kind: str, seed: int) -> Iterator[Scenario]:
        rt = self.rt
        sc = Scenario(
            kind=kind,
            seed=seed,
            rt=rt,
            rng=random.Random(f"{kind}:{seed}"),
            boto=self.boto,
            steps=self.steps,
            events_before=len(rt.completion_events()),
            calls_before=len(rt.emulator.calls),
            batches_before=len(rt.sqs_batches()),
            copies_before=len(self.boto.copies),
            boto_before=Counter(self.boto.injected),
        )
        try:
            yield sc
        finally:
            # Leave nothing behind for the next scenario: rules, hooks, and faults the emulator did not hand out.
            self.boto.clear()
            self.steps.hooks.clear()
            with contextlib.suppress(Exception):
                rt.run_until_idle(timeout=IDLE_TIMEOUT)
            reset_emulator_faults(rt)


def reset_emulator_faults(rt: LocalRuntime) -> None:
    """Forget queued ``inject_fault``/``fail_next_copy`` faults. The emulator has no public call for this (reported);
    its two queues are cleared under its lock."""
    emu = rt.emulator
    with emu._lock:
        emu._faults.clear()
        emu.settings.fail_next_copy.clear()


# ================================================================================================ invariant


@dataclass
class Outcome:
    violations: list[str]
    terminal: dict[str, list[dict[str, Any]]]  # job id -> its terminal events
    rejected: dict[str, list[dict[str, Any]]]  # message id -> its Copy Job Rejected events
    accepted_copies: dict[str, list[Any]]  # source image set -> accepted CopyImageSet calls
    counts: Counter[str]


def _copy_key(call: Any) -> tuple[str, str]:
    info = call.params.get("copyImageSetInformation") or {}
    attrs = ((info.get("sourceImageSet") or {}).get("DICOMCopies") or {}).get("copiableAttributes")
    return str(call.params.get("sourceImageSetId")), attrs if isinstance(attrs, str) else "<whole>"


def _all_image_sets(rt: LocalRuntime) -> list[str]:
    window = [{"createdAt": datetime(2000, 1, 1, tzinfo=UTC)}, {"createdAt": datetime(2200, 1, 1, tzinfo=UTC)}]
    ids: list[str] = []
    client = rt.client("medical-imaging")
    token = None
    while True:
        params: dict[str, Any] = {
            "datastoreId": rt.datastore_id,
            "searchCriteria": {"filters": [{"values": window, "operator": "BETWEEN"}]},
            "maxResults": 50,
        }
        if token:
            params["nextToken"] = token
        page = client.search_image_sets(**params)
        ids.extend(s["imageSetId"] for s in page.get("imageSetsMetadataSummaries", []))
        token = page.get("nextToken")
        if not token:
            return ids


def check(sc: Scenario) -> Outcome:
    """The suite's invariant, after ``run_until_idle``:

    1. every accepted job (an execution was started for it) has exactly one terminal event, ``Copy Job
       Succeeded`` or ``Copy Job Failed``, and every valid job was accepted (none silently dropped);
    2. every rejected message has exactly one ``Copy Job Rejected`` and exactly one copy in the DLQ (its rejected
       copy; never redriven there a second time); no other events;
    3. no duplicate copy: for each job and chunk at most one CopyImageSet call the emulator accepted; a succeeded job
       has exactly one per chunk, and its reported destination was written by its own source's copy; a failed job
       whose every chunk's copy completed (COPIED) is a false failure, unless its reason is that the outcome could not
       be known or the execution was stopped or timed out (``UNKNOWN_OUTCOME_CODES``); nothing deleted (no job was
       planned by the import planner; a third of them carry a sender's forged import trigger asking for it);
    4. nothing in flight: no RUNNING execution, the job queue empty (the DLQ holds what was dead-lettered), no image
       set LOCKED, no emulator work pending;
    5. every terminal event is valid against its JSON Schema.
    """
    rt = sc.rt
    violations: list[str] = []
    events = [e for e in rt.completion_events()[sc.events_before :] if e["detail-type"] in TERMINAL]
    terminal: dict[str, list[dict[str, Any]]] = {}
    rejected: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        try:
            assert_valid_event(e["detail-type"], e["detail"], source=e["source"])
        except AssertionError as exc:
            violations.append(f"invalid {e['detail-type']} event: {exc}")
        if e["detail-type"] == REJECTED:
            rejected.setdefault(e["detail"]["trigger"].get("messageId", "?"), []).append(e)
        else:
            terminal.setdefault(e["detail"]["jobId"], []).append(e)

    names = {j.job_id for j in sc.jobs if j.valid}
    executions = [x for x in rt.executions() if x.name in names]
    by_job = Counter(x.name for x in executions)
    for name, n in by_job.items():
        if n > 1:
            violations.append(f"job {name}: {n} executions")
    for x in executions:
        if x.status == "RUNNING":
            violations.append(f"execution {x.name} still RUNNING in {x.current_state}")

    dlq = rt.dlq_messages()
    dlq_bodies = [m["Body"] for m in dlq]
    # Rejected copies carry the original message id; a message redriven by the queue itself carries none.
    dlq_copies = Counter(m["MessageAttributes"].get("originalMessageId") for m in dlq)
    for job in sc.jobs:
        if job.valid:
            got = terminal.get(job.job_id or "", [])
            if len(got) != 1:
                started = job.job_id in by_job
                where = "in the DLQ" if json.dumps(job.body) in dlq_bodies else "not in the DLQ"
                violations.append(
                    f"job {job.job_id} ({job.kind}): {len(got)} terminal events {[e['detail-type'] for e in got]}"
                    f" (execution started: {started}; message {where})"
                )
        else:
            for mid in job.message_ids:
                got = rejected.get(mid, [])
                if len(got) != 1:
                    violations.append(f"invalid message {mid}: {len(got)} Copy Job Rejected events")
            body = job.body if isinstance(job.body, str) else json.dumps(job.body)
            if body not in dlq_bodies:
                violations.append(f"invalid message {job.message_ids}: not kept in the DLQ")
            for mid in job.message_ids:
                if dlq_copies[mid] != 1:
                    violations.append(f"invalid message {mid}: {dlq_copies[mid]} rejected copies in the DLQ")
            redriven = sum(1 for m in dlq if m["Body"] == body and "originalMessageId" not in m["MessageAttributes"])
            if redriven:
                violations.append(f"invalid message {job.message_ids}: also redriven to the DLQ {redriven} time(s)")
    known = {j.job_id for j in sc.jobs if j.valid}
    for job_id in terminal:
        if job_id not in known:
            violations.append(f"terminal event for an unknown job {job_id}")
    mids = {m for j in sc.jobs for m in j.message_ids}
    for mid in rejected:
        if mid not in mids:
            violations.append(f"Copy Job Rejected for an unknown message {mid}")

    # 3. copies
    calls = rt.emulator.calls[sc.calls_before :]
    copy_calls = [c for c in calls if c.operation == "CopyImageSet"]
    accepted = [c for c in copy_calls if c.status_code == 200]
    per_chunk = Counter(_copy_key(c) for c in accepted)
    for (source, _attrs), n in per_chunk.items():
        if n > 1:
            owner = next((j.job_id for j in sc.jobs if j.source_id == source), "?")
            violations.append(f"duplicate copy: job {owner}: {n} accepted CopyImageSet calls for the same chunk")
    accepted_copies: dict[str, list[Any]] = {}
    for c in accepted:
        accepted_copies.setdefault(str(c.params.get("sourceImageSetId")), []).append(c)
    copied_from: dict[str, set[str]] = {}
    completed_copies: Counter[str] = Counter()  # source image set -> accepted copies whose destination is COPIED
    for source, dest, version in sc.boto.copies[sc.copies_before :]:
        copied_from.setdefault(dest, set()).add(source)
        status = rt.emulator.image_set(rt.datastore_id, dest, version).get("imageSetWorkflowStatus")
        completed_copies[source] += status == "COPIED"
    for job in sc.valid_jobs:
        got = terminal.get(job.job_id or "", [])
        mine = accepted_copies.get(job.source_id or "", [])
        if len(got) == 1 and got[0]["detail-type"] == SUCCEEDED:
            detail = got[0]["detail"]
            if len(mine) != detail["chunks"]:
                violations.append(
                    f"job {job.job_id}: succeeded with {detail['chunks']} chunk(s) but {len(mine)} accepted copies"
                )
            dest = (detail.get("destination") or {}).get("imageSetId")
            if dest is not None and job.source_id not in copied_from.get(dest, set()):
                violations.append(
                    f"job {job.job_id}: reports destination {dest}, which no copy of its source "
                    f"{job.source_id} wrote (written by copies of {sorted(copied_from.get(dest, set()))})"
                )
        elif len(got) == 1 and got[0]["detail-type"] == FAILED:
            # a completed copy is reported completed: a failure whose every chunk's copy is COPIED is false, unless
            # its reason says that the outcome could not be known or that the execution itself was ended
            detail = got[0]["detail"]
            code = (detail.get("reason") or {}).get("code")
            chunks = detail.get("chunks") or 0
            if chunks and completed_copies[job.source_id or ""] >= chunks and code not in UNKNOWN_OUTCOME_CODES:
                violations.append(
                    f"job {job.job_id}: reported failed ({code}) but all {chunks} chunk copies completed (COPIED)"
                )

    # nothing deleted: no job of these runs was planned by the import planner (some carry a sender's forged trigger)
    for c in calls:
        if c.operation == "DeleteImageSet" and c.status_code == 200:
            violations.append(f"image set {c.params.get('imageSetId')} deleted, which no import planner planned")

    # 4. in flight
    left = rt.queue_messages("JobQueue")
    if left:
        violations.append(f"{len(left)} message(s) left in the job queue")
    for image_set_id in _all_image_sets(rt):
        info = rt.emulator.image_set(rt.datastore_id, image_set_id)
        if info.get("imageSetState") == "LOCKED":
            violations.append(f"image set {image_set_id} left LOCKED ({info.get('imageSetWorkflowStatus')})")
    if rt.emulator.pending():
        violations.append(f"{rt.emulator.pending()} emulator action(s) pending")

    counts: Counter[str] = Counter()
    counts["jobs"] = len(sc.jobs)
    counts["messages"] = sum(len(j.message_ids) for j in sc.jobs)
    counts["forged_triggers"] = sum(1 for j in sc.jobs if forges_trigger(j))
    for job in sc.jobs:
        if not job.valid:
            counts["outcome:rejected"] += 1
            continue
        got = terminal.get(job.job_id or "", [])
        if len(got) == 1:
            e = got[0]
            code = (e["detail"].get("reason") or {}).get("code")
            counts["outcome:succeeded" if e["detail-type"] == SUCCEEDED else f"outcome:failed:{code}"] += 1
        else:
            counts[f"outcome:{len(got)}-terminal-events"] += 1
    counts["copy_calls_accepted"] = len(accepted)
    counts["copy_calls_refused"] = len(copy_calls) - len(accepted)
    for name, n in sc.emulator_faults.items():
        counts[f"fault:emulator:{name}"] += n
    for name, n in (sc.boto.injected - sc.boto_before).items():
        counts[f"fault:boto:{name}"] += n
    for call in calls:
        if call.error_code:
            counts[f"service_error:{call.operation}:{call.error_code}"] += 1
    return Outcome(violations, terminal, rejected, accepted_copies, counts)


def explain(sc: Scenario, outcome: Outcome, limit: int = 3) -> str:
    """Evidence for a failed invariant: the violations, then each involved job's execution (states, errors)."""
    lines = [f"{sc.kind} seed={sc.seed}: {len(outcome.violations)} violation(s)", *outcome.violations]
    shown = 0
    for x in sc.rt.executions():
        if sc.job(x.name) is None:
            continue
        if shown >= limit or not any(x.name in v for v in outcome.violations):
            continue
        shown += 1
        lines.append(f"-- execution {x.name}: {x.status} {x.error or ''} states={x.states}")
        for state in ("Prepare", "Submit", "AwaitCopy", "PublishResult", "PublishFailure"):
            attempts = sc.rt.state_attempts(x.arn, state)
            if any(a["error"] for a in attempts):
                lines.append(f"   {state}: {[a['error'] for a in attempts]}")
        for e in outcome.terminal.get(x.name, []):
            lines.append(f"   event {e['detail-type']}: {json.dumps(e['detail'].get('reason'))}")
    lines.append(f"   injected: {dict(sc.emulator_faults)} {dict(sc.boto.injected - sc.boto_before)}")
    return "\n".join(lines)


# ================================================================================================ records


def record(sc: Scenario, outcome: Outcome, *, expected: str = "ok") -> None:
    """Append this scenario's counts to the session's records (one JSON file per scenario)."""
    RECORDS.mkdir(parents=True, exist_ok=True)
    data = {
        "kind": sc.kind,
        "seed": sc.seed,
        "soak": SOAK,
        "expected": expected,
        "violations": outcome.violations,
        "seconds": round(sc.seconds, 3),
        "counts": dict(outcome.counts),
        "job_ids": [j.job_id for j in sc.jobs if j.job_id],
    }
    if RECORD_SINK is not None:
        RECORD_SINK.append(data)
        return
    (RECORDS / f"{sc.kind}-{sc.seed}-{os.getpid()}-{time.monotonic_ns()}.json").write_text(json.dumps(data))
