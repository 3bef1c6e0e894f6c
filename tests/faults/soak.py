"""The randomized soak (issue #12): N randomized fault runs (default 1,000) within a time budget, the invariant checked
after every run.

    python -m tests.faults.soak [--runs 1000] [--budget 3600] [--workers 2] [--plan-seed 12]
    python -m tests.faults.soak --replay throttling:123456:0.2:2-6    # one run again, on a fresh runtime

Each run is one of the seeded scenarios of ``tests/faults/test_faults.py`` (the function itself: its fault schedule,
its batch, ``harness.check`` and its own assertions), with a random seed, a random small batch size (invalid
messages among the jobs, as ``make_batch`` draws them) and a random share of valid jobs sent twice. The plan (kind,
seed, duplicates, batch size of every run) is drawn from ``--plan-seed``, so a soak is repeatable and a failing run
is replayed from its printed ``kind:seed:duplicates:min-max``.

Runs are cheap because a worker process keeps one warm ``LocalRuntime`` (``Harness``) across runs: a run costs its
own virtual-clock time only. Isolation: ``Harness.scenario`` checks only what happened since the run began, every job
ID is drawn from the run's seed (and checked unique on its runtime here), and a worker starts a fresh runtime every
``--recycle`` runs (the runtime's records grow, and ``check`` lists every image set). ``--workers`` processes share
the plan (run i goes to worker i mod n); the parent prints progress (runs, rate, violations) every
``--progress`` seconds and writes ``build/fault-injection/soak.json``: runs, jobs, messages, faults injected by
name and by scenario kind, outcomes, violations, and the replay string of every failing run. Any failing run (an
invariant violation, a scenario assertion, an error) makes the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OUT = Path("build/fault-injection/soak")
SUMMARY = Path("build/fault-injection/soak.json")


# Scenario kind -> (its seeded scenario function in tests/faults/test_faults.py, its weight in the plan). The long
# outages (virtual hours, tens of real seconds each) get a small weight. Not here: the single fixed scenarios (fixed
# job IDs, not seeded).
SCENARIOS: dict[str, tuple[str, float]] = {
    "throttling": ("test_throttling_bursts", 1.0),
    "internal-server-error": ("test_internal_server_error_bursts", 1.0),
    "conflict": ("test_concurrent_writer_on_the_destination", 1.0),
    "copy-failed": ("test_copy_failed_ends_the_job_failed_with_the_service_message", 1.0),
    "crash-submit-retryable": ("test_submit_dies_after_copy_before_recording_it_transient", 1.0),
    "crash-submit-timeout": ("test_submit_sandbox_dies_after_copy_before_recording_it", 1.0),
    "copy-response-lost": ("test_copy_response_lost_after_the_service_accepted_it", 1.0),
    "crash-consumer": ("test_consumer_dies_after_start_execution", 1.0),
    "crash-publish-after-put": ("test_publish_dies_after_put_events", 1.0),
    "crash-publish-after-marker": ("test_publish_dies_after_marking_it_published", 1.0),
    "crash-reject-after-put": ("test_consumer_dies_after_publishing_a_rejection", 1.0),
    "consumer-partial-batch": ("test_consumer_partial_batch_failure", 1.0),
    "put-events-failed-entry": ("test_put_events_failed_entries", 1.0),
    "put-events-outage-2h": ("test_a_two_hour_event_bridge_outage_loses_and_duplicates_nothing", 0.1),
    "publish-budget-exhausted": ("test_a_publisher_that_outlived_its_budget_is_covered_by_the_safety_net", 0.1),
    "await-outage-past-budget": ("test_a_status_outage_past_await_copys_budget_is_verified", 0.1),
}


@dataclass(frozen=True)
class Run:
    index: int
    kind: str
    seed: int
    duplicates: float
    jobs: tuple[int, int]

    @property
    def replay(self) -> str:
        return f"{self.kind}:{self.seed}:{self.duplicates}:{self.jobs[0]}-{self.jobs[1]}"

    @classmethod
    def parse(cls, text: str) -> Run:
        kind, seed, duplicates, jobs = text.split(":")
        low, high = jobs.split("-")
        return cls(0, kind, int(seed), float(duplicates), (int(low), int(high)))


def plan(runs: int, plan_seed: int) -> list[Run]:
    """The soak's runs, drawn from ``plan_seed``; seeds are distinct per kind (a run's job IDs derive from them)."""
    rng = random.Random(f"soak:{plan_seed}")
    kinds, weights = list(SCENARIOS), [weight for _, weight in SCENARIOS.values()]
    used: set[tuple[str, int]] = set()
    out: list[Run] = []
    for i in range(runs):
        kind = rng.choices(kinds, weights)[0]
        seed = rng.randrange(10**6)
        while (kind, seed) in used:
            seed = rng.randrange(10**6)
        used.add((kind, seed))
        low = rng.randint(1, 4)
        out.append(Run(i, kind, seed, rng.choice((0.0, 0.0, 0.2, 0.5)), (low, low + rng.randint(0, 4))))
    return out


# ======================================================================== one worker


def execute(run: Run, harness: Any, seen_jobs: set[str]) -> dict[str, Any]:
    """One run on ``harness``: the scenario function, then its record (counts, violations) and any failure."""
    from tests.faults import harness as h
    from tests.faults import test_faults

    function = getattr(test_faults, SCENARIOS[run.kind][0])
    sink: list[dict[str, Any]] = []
    h.RECORD_SINK, h.BATCH = sink, h.BatchSettings(jobs=run.jobs, duplicates=run.duplicates)
    error = None
    t0 = time.monotonic()
    try:
        function(harness, run.seed)
    except Exception as exc:  # an assertion or an error of the run: it fails the soak, with its replay
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:4000]
    finally:
        h.RECORD_SINK, h.BATCH = None, h.BatchSettings()
    result: dict[str, Any] = {"run": asdict(run), "replay": run.replay, "seconds": round(time.monotonic() - t0, 3)}
    record = sink[-1] if sink else {"violations": [], "counts": {}}
    result["violations"] = list(record["violations"])
    result["counts"] = record["counts"]
    jobs = set(record.get("job_ids", []))
    if jobs & seen_jobs:  # never expected (IDs carry 32 random bits of the seed): the run was not isolated
        result["violations"].append(f"job IDs reused on this runtime: {sorted(jobs & seen_jobs)}")
    seen_jobs |= jobs
    if error is not None:
        result["error"] = error
    result["failed"] = bool(result["violations"] or error)
    return result


def worker(runs: list[Run], budget: float, recycle: int, out: Path) -> None:
    from tests.faults.harness import Harness

    deadline = time.monotonic() + budget
    harness, done, seen_jobs = None, 0, set[str]()
    with out.open("a") as f:
        for run in runs:
            if time.monotonic() > deadline:
                break
            if harness is None or done % recycle == 0:
                if harness is not None:
                    harness.stop()
                harness, seen_jobs = Harness.start(), set()
            result = execute(run, harness, seen_jobs)
            done += 1
            f.write(json.dumps(result) + "\n")
            f.flush()
    if harness is not None:
        harness.stop()


# ======================================================================== the parent


def _results() -> list[dict[str, Any]]:
    results = []
    for path in sorted(OUT.glob("worker-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                results.append(json.loads(line))
    return results


def summarize(results: list[dict[str, Any]], *, seconds: float, args: dict[str, Any]) -> dict[str, Any]:
    total: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    for r in results:
        counts = Counter({k: v for k, v in r["counts"].items() if isinstance(v, int)})
        counts["runs"] = 1
        counts["violations"] = len(r["violations"])
        counts["failed_runs"] = int(r["failed"])
        total.update(counts)
        by_kind.setdefault(r["run"]["kind"], Counter()).update(counts)
    failing = [
        {"replay": r["replay"], "violations": r["violations"][:5], "error": r.get("error")}
        for r in results
        if r["failed"]
    ]
    return {
        "args": args,
        "seconds": round(seconds, 1),
        "runs": total["runs"],
        "runs_per_hour": round(total["runs"] * 3600 / seconds) if seconds else None,
        "jobs": total["jobs"],
        "messages": total["messages"],
        "faults_injected": sum(n for k, n in total.items() if k.startswith("fault:")),
        "faults_by_name": {k.split(":", 1)[1]: n for k, n in sorted(total.items()) if k.startswith("fault:")},
        "violations": total["violations"],
        "failed_runs": total["failed_runs"],
        "outcomes": {k.split(":", 1)[1]: n for k, n in sorted(total.items()) if k.startswith("outcome:")},
        "by_kind": {
            kind: {
                "runs": c["runs"],
                "jobs": c["jobs"],
                "faults_injected": sum(n for k, n in c.items() if k.startswith("fault:")),
                "failed_runs": c["failed_runs"],
            }
            for kind, c in sorted(by_kind.items())
        },
        "failing_runs": failing,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("SOAK_RUNS", "1000")))
    parser.add_argument("--budget", type=float, default=float(os.environ.get("SOAK_BUDGET", "3600")), help="seconds")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SOAK_WORKERS", "2")))
    parser.add_argument("--plan-seed", type=int, default=int(os.environ.get("SOAK_PLAN_SEED", "12")))
    parser.add_argument("--recycle", type=int, default=100, help="a fresh runtime every this many runs per worker")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--replay", help="kind:seed:duplicates:min-max of one run, on a fresh runtime")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)

    if args.replay:
        from tests.faults.harness import Harness

        harness = Harness.start()
        try:
            result = execute(Run.parse(args.replay), harness, set())
        finally:
            harness.stop()
        print(json.dumps(result, indent=2))
        return 1 if result["failed"] else 0

    runs = plan(args.runs, args.plan_seed)
    if args.worker is not None:
        worker(runs[args.worker :: args.workers], args.budget, args.recycle, OUT / f"worker-{args.worker}.jsonl")
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("worker-*.jsonl"):
        old.unlink()
    t0 = time.monotonic()
    base = [sys.executable, "-m", "tests.faults.soak", "--runs", str(args.runs), "--budget", str(args.budget)]
    base += ["--workers", str(args.workers), "--plan-seed", str(args.plan_seed), "--recycle", str(args.recycle)]
    procs = [
        subprocess.Popen([*base, "--worker", str(i)], stderr=(OUT / f"worker-{i}.log").open("w"))
        for i in range(args.workers)
    ]
    print(f"soak: {args.runs} runs, {args.workers} workers, budget {args.budget:.0f}s, plan seed {args.plan_seed}")
    next_progress = t0 + args.progress
    while any(p.poll() is None for p in procs):
        time.sleep(1.0)
        if time.monotonic() >= next_progress:
            next_progress += args.progress
            elapsed = time.monotonic() - t0
            results = _results()
            bad = [r for r in results if r["failed"]]
            rate = len(results) * 3600 / elapsed
            print(f"  {elapsed:6.0f}s runs={len(results)} ({rate:.0f}/h) failed={len(bad)}", flush=True)
            for r in bad[-3:]:
                print(f"    failing: {r['replay']}", flush=True)
    seconds = time.monotonic() - t0
    results = _results()
    summary = summarize(results, seconds=seconds, args=vars(args))
    summary["worker_exit_codes"] = [p.returncode for p in procs]
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"soak: runs={summary['runs']} jobs={summary['jobs']} messages={summary['messages']} "
        f"faults={summary['faults_injected']} violations={summary['violations']} failed runs={summary['failed_runs']} "
        f"in {seconds:.0f}s ({summary['runs_per_hour']}/h); written to {SUMMARY}"
    )
    for f in summary["failing_runs"]:
        print(f"  FAILED {f['replay']}: {f['violations'] or f['error']}")
        print(f"    replay: python -m tests.faults.soak --replay {f['replay']}")
    ok = summary["failed_runs"] == 0 and all(code == 0 for code in summary["worker_exit_codes"])
    complete = summary["runs"] >= args.runs
    if not complete:
        print(f"soak: only {summary['runs']} of {args.runs} runs within the {args.budget:.0f}s budget")
    return 0 if ok and complete else 1


if __name__ == "__main__":
    sys.exit(main())
