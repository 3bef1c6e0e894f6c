"""A backlog longer than the execution timeout, end to end (issue #13): the real template, state machine, consumer
and handlers on the local runtime, scaled down — 0.00125 copies/s (one slot every 824 s), a 4-hour execution timeout
(the shortest the configuration allows: it must outlast the status polling and 3 h of Publish retries) and 36 jobs
sent at once, about twice what one timeout window holds (14400 / 824 = 17.5). Without backpressure the
executions started last would wait for their slot past the timeout and end TIMED_OUT with no event; with it the jobs
wait in the job queue and every job ends with exactly one terminal event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from hicopy.contract import SUCCEEDED
from offline.runtime import LocalRuntime
from tests.e2e.helpers import terminal_events

RATE = 0.00125
TIMEOUT_HOURS = 4
# A quarter of the e2e default time scale: the slots are as far apart in real time (about 2 s) as at 0.005/s.
TIME_SCALE = 0.0025
JOBS = 36


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_backlog_twice_the_timeout_window_ends_with_one_event_per_job(
    make_runtime: Callable[..., LocalRuntime],
) -> None:
    assert JOBS >= 2 * TIMEOUT_HOURS * 3600 * RATE / 1.03
    rt = make_runtime(
        config_overrides={
            "copyRatePerSecond": RATE,
            "executionTimeoutHours": TIMEOUT_HOURS,
            "polling": {"maxWaitSeconds": 1800},
        },
        copy_duration=80.0,
        time_scale=TIME_SCALE,
    )
    src = rt.seed_image_set(series=1, instances_per_series=1)
    for n in range(JOBS):
        rt.send_job(
            {"jobId": f"backlog-{n}", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
        )
    rt.run_until_idle(timeout=800)

    events = terminal_events(rt)
    statuses = Counter(x.status for x in rt.executions())
    kinds = Counter((e["detail-type"], (e["detail"].get("reason") or {}).get("code")) for e in rt.completion_events())
    assert len(events) == JOBS, (statuses, kinds)
    assert Counter(e["detail"]["jobId"] for e in events) == {f"backlog-{n}": 1 for n in range(JOBS)}
    failed = [(e["detail"]["jobId"], e["detail"].get("reason")) for e in events if e["detail-type"] != SUCCEEDED]
    assert not failed, (kinds, failed)
    assert statuses == {"SUCCEEDED": JOBS}, statuses  # none TIMED_OUT
    # the backlog really outlasted one execution timeout: its copies spanned more than the timeout
    done = sorted(_ts(e["detail"]["completedAt"]) for e in events)
    assert (done[-1] - done[0]).total_seconds() > TIMEOUT_HOURS * 3600
