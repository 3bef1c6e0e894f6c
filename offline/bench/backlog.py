"""Backlog benchmark (issue #13): the REAL admission, pacing and chunk ordering on a discrete-event clock.

No local runtime: a lean event loop calls the domain functions the Lambdas call — ``Admission.decide`` (the
consumer), ``Pacer.reserve`` (Pace), ``Pacer.claim`` (Submit's turn) — with in-memory ports
(``InMemoryPaceStore``), at the service's quotas (CopyImageSet 0.25/s burst 1; GetImageSet 25 TPS, GetImageSetMetadata
50 TPS). What the event loop models around them: the job queue (a message is received when it becomes visible; a
deferred job comes back after its delay), Prepare (2 GetImageSet + 1 GetImageSetMetadata, 1.5 s), the Wait state
(the call at the slot), Submit (2 GetImageSet, then CopyImageSet), the copy (lognormal, median 60 s, sigma 0.6,
clipped to [10 s, 900 s]), AwaitCopy (GetImageSet polls at 5 s x 2^n up to 120 s) and the execution timeout (48 h:
an execution still running then ends TIMED_OUT, without an event).

``python -m offline.bench.backlog`` (``make bench-backlog``) runs the three scenarios of the issue and exits 1 when
a target is missed; ``--scale`` shrinks them (the test suite runs a small one and asserts the invariants).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from hicopy.domain.admission import Admission, AdmissionPolicy, Ticket
from hicopy.domain.job import Priority
from hicopy.domain.pacing import COPY_ACTION, MAX_MISSED_SLOTS, MAX_TURN_WAIT, InMemoryPaceStore, Pacer
from hicopy.errors import BacklogExpired

RATE = 0.25  # CopyImageSet quota, per second (burst 1)
GET_IMAGE_SET_TPS = 25
GET_METADATA_TPS = 50
TIMEOUT = 48 * 3600.0  # executionTimeoutHours
PREPARE_SECONDS, TASK_SECONDS = 1.5, 0.2
POLL_FIRST, POLL_RATE, POLL_MAX = 5.0, 2.0, 120.0
ALARM_AGE = 6 * 3600.0  # the JobBacklogOld alarm (infra.monitoring)
RECV, PREPARED, PACE, CALL, NOTICED = range(5)


class SimClock:
    """The consumer's clock during one receive: starts at the event's time; ``sleep`` moves it on."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Job:
    chunks: int
    priority: Priority
    arrival: float
    ticket: Ticket
    started: float | None = None
    first_call: float | None = None
    chunk: int = 0
    missed: int = 0
    ended: float | None = None
    outcome: str = ""  # succeeded | failed | rejected | timed_out
    events: int = 0


@dataclass
class Result:
    name: str
    jobs: int
    copies: int
    outcomes: Counter[str]
    without_event: int
    drain: float
    physical: float
    interactive_first_call: list[float]
    interactive_admitted: list[float]
    peak_get_image_set: int
    peak_metadata: int
    max_start_lag: float  # longest execution wait (start to its last event), s
    alarm_at: float | None
    receives: int
    wall: float

    @property
    def drain_ratio(self) -> float:
        return self.drain / self.physical if self.physical else 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Simulation:
    name: str
    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    seed: int = 1
    timeout: float = TIMEOUT

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.store = InMemoryPaceStore()
        self.pacer = Pacer(self.store, rate=RATE)
        self.admission = Admission(self.store, copy_rate=RATE, policy=self.policy, rng=random.Random(self.seed + 1))
        self.jobs: list[Job] = []
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.reads_gis: Counter[int] = Counter()
        self.reads_meta: Counter[int] = Counter()
        self.receives = 0
        self.alarm_at: float | None = None
        self.clock = SimClock(0.0)
        self.decide = self.admission.decide

    def add(self, arrival: float, chunks: int, priority: Priority = "bulk") -> None:
        index = len(self.jobs)
        self.jobs.append(Job(chunks, priority, arrival, Ticket(f"m{index}", arrival)))
        self._at(arrival, RECV, index)

    def _at(self, t: float, kind: int, index: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, index))

    def run(self) -> Result:
        began = time.process_time()
        heap, jobs, timeout = self.heap, self.jobs, self.timeout
        while heap:
            t, _, kind, index = heapq.heappop(heap)
            job = jobs[index]
            if job.outcome:
                continue
            if job.started is not None and t > job.started + timeout:
                job.outcome, job.ended = "timed_out", job.started + timeout  # Step Functions ends it: no event
                continue
            if kind == RECV:
                self._receive(t, index, job)
            elif kind == PREPARED:
                self._at(t + TASK_SECONDS, PACE, index)
            elif kind == PACE:
                if job.missed > MAX_MISSED_SLOTS:
                    self._end(t, job, "failed")
                    continue
                grant = self.pacer.reserve(COPY_ACTION, t)
                self._at(max(grant.slot, t + TASK_SECONDS), CALL, index)
            elif kind == CALL:
                self._call(t, index, job)
            elif kind == NOTICED:
                job.chunk += 1
                if job.chunk < job.chunks:
                    self._at(t + TASK_SECONDS, PACE, index)
                else:
                    self._end(t + TASK_SECONDS, job, "succeeded")
        return self._result(time.process_time() - began)

    def _receive(self, t: float, index: int, job: Job) -> None:
        self.receives += 1
        clock = self.clock
        clock.t = t
        if self.alarm_at is None and t - job.ticket.first_seen >= ALARM_AGE:
            self.alarm_at = t  # JobAgeSeconds (Maximum) crosses the JobBacklogOld threshold
        try:
            decision = self.decide(job.priority, job.ticket, clock)
        except BacklogExpired:
            self._end(clock.t, job, "rejected")  # Copy Job Rejected + DLQ copy
            return
        if not decision.admitted:
            job.ticket = decision.ticket  # type: ignore[assignment]  # a deferred decision carries its ticket
            self.seq += 1
            heapq.heappush(self.heap, (clock.t + decision.delay, self.seq, RECV, index))
            return
        job.started = clock.now()
        second = int(job.started)
        self.reads_gis[second] += 2  # Prepare: GetImageSet source + destination
        self.reads_meta[second + 1] += 1  # Prepare: GetImageSetMetadata of the source
        self._at(job.started + PREPARE_SECONDS, PREPARED, index)

    def _call(self, t: float, index: int, job: Job) -> None:
        wait = self.pacer.claim(COPY_ACTION, t)
        if wait > 0:
            if wait > MAX_TURN_WAIT:
                job.missed += 1
                self._at(t + TASK_SECONDS, PACE, index)  # SlotMissed: back to Pace
            else:
                self._at(t + wait, CALL, index)
            return
        job.missed = 0
        self.reads_gis[int(t) - 1] += 2  # Submit: GetImageSet source + destination, just before the slot
        if job.first_call is None:
            job.first_call = t
        duration = min(900.0, max(10.0, self.rng.lognormvariate(math.log(60.0), 0.6)))
        # AwaitCopy as polling alone (every copy event lost, nominal steps): the most GetImageSet reads it can make
        poll, delay = t + POLL_FIRST, POLL_FIRST
        while True:
            self.reads_gis[int(poll)] += 1  # AwaitCopy: GetImageSet of the destination
            if poll >= t + duration:
                break
            delay = min(POLL_MAX, delay * POLL_RATE)
            poll += delay
        self._at(poll + TASK_SECONDS, NOTICED, index)

    def _end(self, t: float, job: Job, outcome: str) -> None:
        job.outcome, job.ended = outcome, t
        job.events += 1

    def _result(self, wall: float) -> Result:
        outcomes = Counter(job.outcome or "unfinished" for job in self.jobs)
        copies = sum(job.chunks for job in self.jobs)
        first = min(job.arrival for job in self.jobs)
        last = max(job.ended or 0.0 for job in self.jobs)
        interactive = [job for job in self.jobs if job.priority == "interactive"]
        lags = [job.ended - job.started for job in self.jobs if job.started is not None and job.ended is not None]
        return Result(
            name=self.name,
            jobs=len(self.jobs),
            copies=copies,
            outcomes=outcomes,
            without_event=sum(1 for job in self.jobs if job.events != 1),
            drain=last - first,
            physical=copies / RATE,
            interactive_first_call=[j.first_call - j.arrival for j in interactive if j.first_call is not None],
            interactive_admitted=[j.started - j.arrival for j in interactive if j.started is not None],
            peak_get_image_set=max(self.reads_gis.values(), default=0),
            peak_metadata=max(self.reads_meta.values(), default=0),
            max_start_lag=max(lags, default=0.0),
            alarm_at=self.alarm_at,
            receives=self.receives,
            wall=wall,
        )


# --- the scenarios ------------------------------------------------------------------------------------------------
def mixed_chunks(rng: random.Random) -> int:
    """80 / 15 / 5 % of jobs with 1 / 2 / 5 chunks."""
    draw = rng.random()
    return 1 if draw < 0.80 else 2 if draw < 0.95 else 5


def all_at_once(jobs: int, seed: int = 1) -> Simulation:
    sim, rng = Simulation(f"{jobs:,} mixed jobs at once", seed=seed), random.Random(seed)
    for _ in range(jobs):
        sim.add(0.0, mixed_chunks(rng))
    return sim


def overload(hours: float, factor: float = 1.2, seed: int = 1) -> Simulation:
    """Poisson arrivals of mixed jobs at ``factor`` x the capacity (in copies) for ``hours``."""
    sim, rng = Simulation(f"arrivals at {factor:g}x capacity for {hours:g} h", seed=seed), random.Random(seed)
    mean_chunks = 0.80 * 1 + 0.15 * 2 + 0.05 * 5
    jobs_per_second = factor * RATE / 1.03 / mean_chunks
    t = 0.0
    while (t := t + rng.expovariate(jobs_per_second)) < hours * 3600:
        sim.add(t, mixed_chunks(rng))
    return sim


def with_interactive(bulk: int, interactive: int, seed: int = 1) -> Simulation:
    """``bulk`` mixed bulk jobs at once, and ``interactive`` single-chunk interactive jobs sent while they drain."""
    sim, rng = Simulation(f"{bulk:,} bulk + {interactive} interactive jobs", seed=seed), random.Random(seed)
    for _ in range(bulk):
        sim.add(0.0, mixed_chunks(rng))
    span = bulk * 1.35 / RATE * 0.9  # spread over the bulk backlog's drain
    for _ in range(interactive):
        sim.add(rng.uniform(60.0, span), 1, "interactive")
    return sim


@dataclass(frozen=True)
class Check:
    what: str
    value: str
    target: str
    met: bool


def checks(results: list[Result], *, full: bool) -> list[Check]:
    out: list[Check] = []
    for r in results:
        bad = r.outcomes["timed_out"] + r.outcomes["failed"] + r.outcomes["unfinished"] + r.outcomes["rejected"]
        out.append(Check(f"{r.name}: failed / timed out / rejected", str(bad), "0", bad == 0))
        out.append(
            Check(f"{r.name}: endings without exactly one event", str(r.without_event), "0", r.without_event == 0)
        )
        out.append(
            Check(
                f"{r.name}: peak GetImageSet / GetImageSetMetadata per s",
                f"{r.peak_get_image_set} / {r.peak_metadata}",
                f"<= {GET_IMAGE_SET_TPS} / {GET_METADATA_TPS}",
                r.peak_get_image_set <= GET_IMAGE_SET_TPS and r.peak_metadata <= GET_METADATA_TPS,
            )
        )
    at_once, over, lanes = results
    if full:
        out.append(
            Check(
                f"{at_once.name}: drain / physical limit",
                f"{at_once.drain_ratio:.3f}",
                "<= 1.05",
                at_once.drain_ratio <= 1.05,
            )
        )
        out.append(
            Check(f"{over.name}: JobBacklogOld alarm", _hours(over.alarm_at), "fires", over.alarm_at is not None)
        )
    p95 = percentile(lanes.interactive_first_call, 95)
    out.append(Check(f"{lanes.name}: interactive send -> CopyImageSet p95", f"{p95:.0f} s", "<= 300 s", p95 <= 300))
    return out


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f} h"


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | jobs | copies | succeeded | failed | timed out | rejected | without event | drain | physical "
        "limit | drain / limit | longest execution | interactive wait p50 / p95 (send -> copy call) | peak reads/s "
        "(GetImageSet, Metadata) | backlog alarm | receives/job | sim CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        wait = (
            f"{percentile(r.interactive_first_call, 50):.0f} s / {percentile(r.interactive_first_call, 95):.0f} s"
            if r.interactive_first_call
            else "-"
        )
        lines.append(
            f"| {r.name} | {r.jobs:,} | {r.copies:,} | {r.outcomes['succeeded']:,} | {r.outcomes['failed']} | "
            f"{r.outcomes['timed_out']} | {r.outcomes['rejected']} | {r.without_event} | {_hours(r.drain)} | "
            f"{_hours(r.physical)} | {r.drain_ratio:.3f} | {_hours(r.max_start_lag)} | {wait} | "
            f"{r.peak_get_image_set}, {r.peak_metadata} | {_hours(r.alarm_at)} | {r.receives / r.jobs:.0f} | "
            f"{r.wall:.0f} s |"
        )
    return "\n".join(lines)


def scenarios(scale: float) -> list[Simulation]:
    return [
        all_at_once(max(1, round(100_000 * scale))),
        overload(48 * scale),
        with_interactive(max(1, round(100_000 * scale)), max(1, round(100 * scale))),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.bench.backlog", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the scenarios (1 = the issue's sizes)")
    parser.add_argument("--only", type=int, choices=[1, 2, 3], help="run one scenario (no targets checked)")
    args = parser.parse_args(argv)
    if args.only:
        result = scenarios(args.scale)[args.only - 1].run()
        print(table([result]))
        return 0
    results = []
    for sim in scenarios(args.scale):
        results.append(sim.run())
        print(f"ran: {sim.name} ({results[-1].wall:.0f} s)", file=sys.stderr, flush=True)
    print(table(results))
    print()
    failed = 0
    for check in checks(results, full=args.scale >= 1):
        failed += not check.met
        print(f"{'met   ' if check.met else 'MISSED'} {check.what}: {check.value} (target {check.target})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
