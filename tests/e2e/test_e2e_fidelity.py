"""Issue #14's local-runtime defects: what a new user saw that AWS would not show."""

from __future__ import annotations

import json
from datetime import datetime

from hicopy.contract import COPY_REQUESTED, REJECTED, SUCCEEDED
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_event_envelope_time_is_on_the_same_virtual_clock_as_the_detail(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.send_job({"jobId": "clock-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=30)
    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED
    # PutEvents sets the envelope's time when Publish runs, right after completedAt (second precision).
    gap = (_ts(event["time"]) - _ts(event["detail"]["completedAt"])).total_seconds()
    assert -1.5 <= gap <= 60, (event["time"], event["detail"]["completedAt"])
    # The job's virtual duration is many times its real one: on the real clock the envelope would lag far behind.
    assert (_ts(event["detail"]["completedAt"]) - _ts(event["detail"]["receivedAt"])).total_seconds() > 60


def test_a_rejected_copy_requested_event_names_its_event_id_and_source(rt: LocalRuntime) -> None:
    event_id = rt.put_event(COPY_REQUESTED, {"datastoreId": rt.datastore_id, "source": {"imageSetId": "nope"}})
    rt.run_until_idle(timeout=30)
    event = only_event(rt)
    assert event["detail-type"] == REJECTED
    trigger = event["detail"]["trigger"]
    assert trigger["type"] == "event" and trigger["eventId"] == event_id and trigger["source"]
    assert json.loads(event["detail"]["originalBody"])["id"] == event_id
