"""Pacing regression on the local runtime: a small backlog through the real state machine and handlers.

The same seeded backlog runs under the shipped policy and under the naive one (``offline.bench``), each on a fresh
runtime. Virtual seconds throughout; time scale 0.05 (20x faster than real time).
"""

from __future__ import annotations

import collections
import itertools

import pytest

from offline.bench.metrics import Metrics, compute
from offline.bench.policies import NAIVE, SHIPPED
from offline.bench.run import RunRecord, run_policy
from offline.bench.workload import DurationDistribution, jobs

pytestmark = pytest.mark.xdist_group("bench")

SCALE = 0.05
SEED = 11
BACKLOG = 10
DIST = DurationDistribution(median=10, sigma=0.2, low=10, high=15)
TOLERANCE = 0.05  # virtual seconds


@pytest.fixture(scope="module")
def shipped() -> RunRecord:
    return run_policy(
        SHIPPED, jobs(BACKLOG, seed=SEED, distribution=DIST), time_scale=SCALE, seed=SEED, distribution=DIST, timeout=60
    )


@pytest.fixture(scope="module")
def naive() -> RunRecord:
    return run_policy(
        NAIVE, jobs(BACKLOG, seed=SEED, distribution=DIST), time_scale=SCALE, seed=SEED, distribution=DIST, timeout=60
    )


def test_racing_executions_get_slots_spaced_by_the_quota_and_never_call_early(shipped: RunRecord) -> None:
    interval = 1.0 / shipped.rate
    slots = sorted(s for j in shipped.jobs for s in j.slots)
    assert len(slots) >= BACKLOG  # every execution reserved a slot through the shared GCRA table
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= interval - 1e-6, gaps
    for job in shipped.jobs:
        calls = [c.at for c in shipped.calls if c.job_id == job.job_id]
        assert not calls or min(calls) >= job.slots[0] - TOLERANCE, (job.job_id, job.slots, calls)
    accepted = sorted(c.at for c in shipped.calls if c.status_code == 200)
    assert len(accepted) == sum(1 for j in shipped.jobs if j.status == "SUCCEEDED") >= 2
    assert min(b - a for a, b in itertools.pairwise(accepted)) >= interval - TOLERANCE
    assert shipped.definition["States"]["Pace"]["Type"] == "Task"


def test_shipped_policy_fails_no_job_and_never_chains_throttles(shipped: RunRecord) -> None:
    """What pacing guarantees whatever the machine's load: every job succeeds, and a call is never throttled twice
    (the turn taken right before each call keeps a late call from taking the next one's token). The throughput
    targets themselves are measured and checked by the benchmark (``make bench``), not here."""
    m = compute(shipped)
    assert m.failed == 0 and m.unfinished == 0, m.failure_reasons
    calls_per_job = collections.Counter(c.job_id for c in shipped.calls)
    assert sorted(calls_per_job) == sorted(j.job_id for j in shipped.jobs)
    assert max(calls_per_job.values()) <= 2, calls_per_job


def test_naive_policy_is_throttled_on_the_same_backlog(naive: RunRecord) -> None:
    m: Metrics = compute(naive)
    assert "Pace" not in naive.definition["States"]
    assert naive.definition["States"]["Prepare"]["Next"] == "Submit"
    assert m.throttled_calls > 0
    assert m.calls_per_copy is None or m.calls_per_copy > 1.05
    assert m.succeeded + m.failed == BACKLOG
