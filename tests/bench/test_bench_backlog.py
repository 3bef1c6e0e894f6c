"""The backlog benchmark (issue #13), small: the same event loop and domain code as ``make bench-backlog``, with the
invariants asserted (no timings): nothing times out, every job ends with exactly one event, reads stay in quota."""

from __future__ import annotations

import pytest

from hicopy.domain.admission import AdmissionPolicy
from offline.bench.backlog import (
    GET_IMAGE_SET_TPS,
    GET_METADATA_TPS,
    Result,
    Simulation,
    all_at_once,
    checks,
    main,
    mixed_chunks,
    overload,
    percentile,
    with_interactive,
)


def _invariants(result: Result) -> None:
    assert result.outcomes["timed_out"] == 0
    assert result.outcomes["failed"] == result.outcomes["unfinished"] == result.outcomes["rejected"] == 0
    assert result.without_event == 0
    assert result.outcomes["succeeded"] == result.jobs
    assert result.peak_get_image_set <= GET_IMAGE_SET_TPS and result.peak_metadata <= GET_METADATA_TPS


def test_a_backlog_longer_than_the_execution_timeout_ends_without_a_timeout() -> None:
    # 2,000 mixed jobs are ~3 h of copies; with a 1 h timeout, executions started at once would time out.
    sim = all_at_once(2_000)
    sim.timeout = 3600.0
    result = sim.run()
    _invariants(result)
    assert result.drain > 2 * 3600 and result.max_start_lag < 3600
    assert result.drain_ratio < 1.1


def test_overload_queues_the_jobs_and_raises_the_age_alarm() -> None:
    result = overload(8.0).run()
    _invariants(result)
    assert result.alarm_at is None  # 8 h at 1.2x: the oldest job waits < 6 h


def test_interactive_jobs_skip_the_bulk_backlog() -> None:
    result = with_interactive(2_000, 10).run()
    _invariants(result)
    assert len(result.interactive_first_call) == 10
    assert percentile(result.interactive_first_call, 95) <= 300  # the bulk backlog is ~3 h long


def test_without_the_bulk_window_interactive_jobs_wait_behind_the_backlog() -> None:
    """The lanes are what the previous test measures: with the same window for both, interactive jobs wait."""
    sim = with_interactive(2_000, 10)
    sim.admission.policy = AdmissionPolicy(bulk_window=900.0, interactive_window=900.0)
    result = sim.run()
    assert percentile(result.interactive_first_call, 95) > 300


def test_jobs_older_than_the_retention_are_rejected_with_an_event() -> None:
    sim = Simulation("expiring", policy=AdmissionPolicy(max_age=3600.0))
    for _ in range(2_000):
        sim.add(0.0, 1)
    result = sim.run()
    assert result.outcomes["rejected"] > 0 and result.outcomes["timed_out"] == 0
    assert result.without_event == 0  # a rejected job gets its Copy Job Rejected event


def test_checks_flag_a_miss() -> None:
    results = [all_at_once(200).run(), overload(0.5).run(), with_interactive(200, 2).run()]
    assert all(c.met for c in checks(results, full=False))
    results[0].outcomes["timed_out"] = 1
    assert not checks(results, full=False)[0].met


def test_mixed_chunks_are_80_15_5() -> None:
    import random

    rng = random.Random(3)
    draws = [mixed_chunks(rng) for _ in range(20_000)]
    assert abs(draws.count(1) / 20_000 - 0.80) < 0.01 and abs(draws.count(5) / 20_000 - 0.05) < 0.01


@pytest.mark.parametrize("argv", [["--scale", "0.002"]])
def test_main_runs_and_prints_the_table(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "| scenario |" in capsys.readouterr().out


def test_without_backpressure_the_same_backlog_times_out_silently() -> None:
    """What the first test guards against: the same loop with an unbounded admission window (every job started at
    once, as before issue #13) ends most executions TIMED_OUT, without an event."""
    sim = all_at_once(2_000)
    sim.timeout = 3600.0
    sim.admission.policy = AdmissionPolicy(bulk_window=1e9)
    result = sim.run()
    assert result.outcomes["timed_out"] > 1_000 and result.without_event == result.outcomes["timed_out"]


@pytest.mark.parametrize(("start_rate", "within_quota"), [(2.0, True), (1000.0, False)])
def test_start_turns_keep_prepares_reads_within_quota(start_rate: float, within_quota: bool) -> None:
    sim = Simulation(
        "reads",
        policy=AdmissionPolicy(bulk_window=1e9, start_rate=start_rate, start_burst=5 if start_rate < 10 else 1000),
    )
    for _ in range(500):
        sim.add(0.0, 1)
    result = sim.run()
    assert (result.peak_get_image_set <= GET_IMAGE_SET_TPS and result.peak_metadata <= GET_METADATA_TPS) is within_quota
