"""Run one policy on one backlog, on a fresh ``LocalRuntime``, and record what happened (virtual time throughout).

Sequence of one run:

1. Start a fresh runtime (fresh moto account, fresh emulator and token buckets) at ``time_scale``.
2. Register the policy's state machine: the deployed one (``shipped``) or a transformed copy of its definition
   under a second name with the same role and Lambda ARNs (``naive``).
3. Seed one source image set per job; the emulator's copy duration is looked up by source image set.
4. Warm-up: one extra job runs through the policy's state machine to the end, so that every function has been
   imported once (a cold start costs 0.3-1 s of real CPU, i.e. tens of virtual seconds at scaled time). Then the
   emulator's token buckets are reset (``set_throttling(True)``) and everything recorded so far is set aside.
5. Start one execution per job directly on the state machine, with the input the job-queue consumer would give it
   (``hicopy.domain.intake.accept(...).state.dump()``, trigger ``sqs``), named by job ID, all at once: the backlog.
6. Wait until every job has published its terminal event, then read the executions' histories.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hicopy.contract import FAILED, OUTCOME_STATUS, SUCCEEDED
from hicopy.domain.awaiting import checks_status
from offline.bench.policies import Policy
from offline.bench.speedups import BenchSpeedups
from offline.bench.workload import DurationDistribution, Job
from offline.runtime import LocalRuntime

LOG = logging.getLogger(__name__)
WARMUP_COPY_SECONDS = 10.0


@dataclass
class CopyCall:
    """One CopyImageSet request the emulator received (throttled ones included)."""

    at: float  # virtual seconds since the backlog was started
    job_id: str | None
    status_code: int
    error_code: str | None


@dataclass
class JobRecord:
    job_id: str
    duration: float  # the copy's emulated duration
    status: str = "UNFINISHED"  # SUCCEEDED | FAILED | UNFINISHED (no terminal event before the timeout)
    reason_code: str | None = None
    reason_message: str | None = None
    completed_at: float | None = None  # terminal event's completedAt
    copy_started_at: float | None = None  # the accepted CopyImageSet call
    copy_done_at: float | None = None  # copy_started_at + duration: when the emulator marks the copy COPIED
    status_checks: int = 0  # AwaitCopy invocations that checked (one GetImageSet each)
    state_entered: int = 0
    retries: int = 0
    slots: list[float] = field(default_factory=list)  # pacing slots Pace granted (shipped only)
    granted: list[float] = field(default_factory=list)  # when Pace granted them (from the invocation's end)
    submit_reads: list[float] = field(default_factory=list)  # Submit's GetImageSet(source) after its pacing sleep

    @property
    def transitions(self) -> int:
        """State transitions as Step Functions bills them: every state entered, plus every retry."""
        return self.state_entered + self.retries

    @property
    def completion_lag(self) -> float | None:
        if self.completed_at is None or self.copy_done_at is None or self.status != "SUCCEEDED":
            return None
        return self.completed_at - self.copy_done_at


@dataclass
class RunRecord:
    policy: str
    backlog: int
    time_scale: float
    rate: float
    burst: int
    seed: int
    distribution: DurationDistribution
    calls: list[CopyCall]
    jobs: list[JobRecord]
    real_seconds: float
    virtual_seconds: float
    startup_seconds: float
    start_backlog_real_seconds: float  # real time to start every execution
    cpu_seconds: float  # process CPU time from starting the backlog to its last terminal event
    load_average: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average at start and end
    state_machine_arn: str = ""
    definition: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def quota_per_hour(self) -> float:
        return self.rate * 3600.0


def _iso_to_epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def _quiet_moto() -> Iterator[None]:
    """moto logs every failed state (throttles included) at ERROR with the full component tree: mute it."""
    logger = logging.getLogger("moto.stepfunctions.parser")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _pacing_config(rt: LocalRuntime) -> tuple[float, int]:
    lam = rt.client("lambda")
    for spec in rt.runner.functions.values():
        if spec.construct_id == "Pace":
            env = lam.get_function_configuration(FunctionName=spec.function_name)["Environment"]["Variables"]
            return float(env.get("COPY_RATE_PER_SECOND", 0.25)), int(env.get("COPY_BURST", 1))
    return 0.25, 1


def _register(rt: LocalRuntime, policy: Policy, longest_copy: float) -> tuple[str, dict[str, Any]]:
    sfn = rt.client("stepfunctions")
    deployed = sfn.describe_state_machine(stateMachineArn=rt.deployment.state_machine_arn)
    definition: dict[str, Any] = json.loads(deployed["definition"])
    if policy.transform is None:
        return rt.deployment.state_machine_arn, definition
    transformed = policy.transform(definition, longest_copy)
    arn: str = sfn.create_state_machine(
        name=f"{deployed['name']}-{policy.name}",
        definition=json.dumps(transformed),
        roleArn=deployed["roleArn"],
        type=deployed.get("type", "STANDARD"),
    )["stateMachineArn"]
    return arn, transformed


def _consumer_inputs(rt: LocalRuntime, jobs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(execution name, input JSON) per (job ID, source image set ID): what the job-queue consumer would start."""
    with rt.runner.lock:  # the runner swaps ``hicopy`` in sys.modules while a handler runs
        from hicopy.domain.intake import accept

        out = []
        for job_id, source in jobs:
            body = json.dumps({"jobId": job_id, "datastoreId": rt.datastore_id, "source": {"imageSetId": source}})
            state = accept(body, message_id=f"msg-{job_id}", attributes={}, clock=rt.clock).state
            out.append((job_id, json.dumps(state.dump(), separators=(",", ":"))))
    return out


def _terminal_events(rt: LocalRuntime, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for event in rt.completion_events():
        detail = event.get("detail") or {}
        if event.get("detail-type") in (SUCCEEDED, FAILED) and detail.get("jobId") in job_ids:
            out[detail["jobId"]] = event
    return out


def _wait_for(rt: LocalRuntime, job_ids: set[str], timeout: float, poll: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rt.pump()
        if len(_terminal_events(rt, job_ids)) >= len(job_ids):
            return True
        time.sleep(poll)
    return False


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        return 0.0


def _history(rt: LocalRuntime, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's history events, read from moto's executing backend (the API path serializes every event,
    ~0.1 s per execution); falls back to ``GetExecutionHistory``."""
    try:
        from moto.stepfunctions.responses import get_backend

        from offline.runtime import ACCOUNT, REGION

        events: list[dict[str, Any]] = get_backend(ACCOUNT, REGION).get_execution_history(execution_arn)["events"]
        return events
    except Exception:
        return rt.execution_history(execution_arn)


def run_policy(
    policy: Policy,
    jobs: list[Job],
    *,
    time_scale: float,
    seed: int,
    distribution: DurationDistribution,
    timeout: float | None = None,
    progress: bool = False,
) -> RunRecord:
    """Run ``jobs`` as one backlog under ``policy`` on a fresh runtime."""
    t0 = time.monotonic()
    with (
        _quiet_moto(),
        BenchSpeedups(),
        LocalRuntime(
            time_scale=time_scale, emulator_options={"seed": seed, "event_drop_fraction": policy.event_drop_fraction}
        ) as rt,
    ):
        startup = time.monotonic() - t0
        rate, burst = _pacing_config(rt)
        arn, definition = _register(rt, policy, distribution.high)
        sfn = rt.client("stepfunctions")
        emulator = rt.emulator

        sources = {job.job_id: rt.seed_image_set(series=1, instances_per_series=2).image_set_id for job in jobs}
        duration_of = {sources[job.job_id]: job.duration for job in jobs}
        job_of_source = {source: job_id for job_id, source in sources.items()}
        emulator.set_copy_duration(lambda source, _dest: duration_of.get(source, WARMUP_COPY_SECONDS))

        warm_source = rt.seed_image_set(series=1, instances_per_series=2).image_set_id
        [(warm_name, warm_input)] = _consumer_inputs(rt, [(f"warmup-{policy.name}", warm_source)])
        sfn.start_execution(stateMachineArn=arn, name=warm_name, input=warm_input)
        if not _wait_for(rt, {warm_name}, timeout=120.0):
            raise RuntimeError(f"the warm-up job of policy {policy.name} did not finish")
        emulator.set_throttling(True)  # fresh token buckets for the measured backlog
        calls_mark = len(emulator.calls)
        inv_mark = len(rt.invocations)

        inputs = _consumer_inputs(rt, [(job.job_id, sources[job.job_id]) for job in jobs])
        expected_virtual = len(jobs) / rate * 1.3 + distribution.high + 900.0
        budget = timeout if timeout is not None else expected_virtual * time_scale * 2 + 120.0
        v0 = rt.clock.now()
        r0 = time.monotonic()
        cpu0 = time.process_time()
        load0 = _load()
        for name, payload in inputs:
            sfn.start_execution(stateMachineArn=arn, name=name, input=payload)
        started_real = time.monotonic() - r0
        if progress:
            print(f"  [{policy.name} x{len(jobs)}] started in {started_real:.1f} s real", flush=True)
        job_ids = {job.job_id for job in jobs}
        finished = _wait_for(rt, job_ids, timeout=budget)
        real = time.monotonic() - r0
        cpu = time.process_time() - cpu0
        virtual = rt.clock.now() - v0

        records = {job.job_id: JobRecord(job.job_id, job.duration) for job in jobs}
        calls: list[CopyCall] = []
        for c in emulator.calls[calls_mark:]:
            if c.operation == "CopyImageSet":
                job_id = job_of_source.get(str(c.params.get("sourceImageSetId")))
                calls.append(CopyCall(c.at - v0, job_id, c.status_code, c.error_code))
                rec = records.get(job_id or "")
                if rec is not None and c.status_code == 200 and rec.copy_started_at is None:
                    rec.copy_started_at = c.at - v0
                    rec.copy_done_at = c.at - v0 + rec.duration
            elif c.operation == "GetImageSet" and "versionId" not in c.params:
                job_id = job_of_source.get(str(c.params.get("imageSetId")))
                if job_id in records:
                    records[job_id].submit_reads.append(c.at - v0)
        # Invocation times are wall-clock; map them onto the virtual clock through "now" on both clocks.
        wall_now, virtual_now = time.time(), rt.clock.now()
        for inv in rt.invocations[inv_mark:]:
            state = inv.event.get("state") if isinstance(inv.event, dict) else None
            job_id = (state or {}).get("job", {}).get("jobId")
            rec = records.get(job_id or "")
            if rec is None:
                continue
            if inv.construct_id == "AwaitCopy":
                # the first call after Submit only draws the first wait: no GetImageSet (Verify always checks)
                rec.status_checks += int(checks_status(inv.event))
            elif inv.construct_id == "Pace" and inv.ok and isinstance(inv.result, dict):
                rec.slots.append(float(inv.result["pace"]["slot"]) - v0)
                rec.granted.append(virtual_now - (wall_now - inv.ended) / time_scale - v0)
        for job_id, event in _terminal_events(rt, job_ids).items():
            rec = records[job_id]
            detail = event["detail"]
            rec.status = OUTCOME_STATUS[event["detail-type"]]
            rec.completed_at = _iso_to_epoch(detail["completedAt"]) - v0
            reason = detail.get("reason") or {}
            rec.reason_code, rec.reason_message = reason.get("code"), reason.get("message")
        # The first GetImageSet(source) is Prepare's; Submit's come after it.
        for rec in records.values():
            rec.submit_reads = rec.submit_reads[1:]
        for job_id in job_ids:
            with contextlib.suppress(Exception):
                history = _history(rt, f"{arn.replace(':stateMachine:', ':execution:')}:{job_id}")
                rec = records[job_id]
                task_entries = sum(1 for e in history if e["type"] == "TaskStateEntered")
                scheduled = sum(1 for e in history if e["type"] in ("LambdaFunctionScheduled", "TaskScheduled"))
                rec.state_entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
                rec.retries = scheduled - task_entries
        return RunRecord(
            policy=policy.name,
            backlog=len(jobs),
            time_scale=time_scale,
            rate=rate,
            burst=burst,
            seed=seed,
            distribution=distribution,
            calls=calls,
            jobs=[records[job.job_id] for job in jobs],
            real_seconds=real,
            virtual_seconds=virtual,
            startup_seconds=startup,
            start_backlog_real_seconds=started_real,
            cpu_seconds=cpu,
            load_average=(load0, _load()),
            state_machine_arn=arn,
            definition=definition,
            timed_out=not finished,
        )
