"""Assertions shared by the end-to-end tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hicopy.contract import IMAGE_SET_COPIED, TERMINAL_DETAIL_TYPES
from offline.runtime import LocalRuntime
from tests.support.contracts import assert_valid_event


def terminal_events(rt: LocalRuntime) -> list[dict[str, Any]]:
    """Every terminal event on the custom bus, each checked against its JSON Schema."""
    events = [e for e in rt.completion_events() if e["detail-type"] in TERMINAL_DETAIL_TYPES]
    for e in events:
        assert_valid_event(e["detail-type"], e["detail"], source=e["source"])
    return events


def only_event(rt: LocalRuntime) -> dict[str, Any]:
    events = terminal_events(rt)
    assert len(events) == 1, [e["detail-type"] for e in events]
    return events[0]


def sop_uids(metadata: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for series in metadata["Study"]["Series"].values():
        out.update(series["Instances"])
    return out


def retry_sleeps(attempts: list[dict[str, Any]]) -> list[float]:
    """Real seconds Step Functions waited between a failed attempt and the next one."""
    return [
        (nxt["scheduled"] - prev["ended"]).total_seconds()
        for prev, nxt in itertools.pairwise(attempts)
        if prev["ended"] is not None
    ]


def put_copied(rt: LocalRuntime, image_set_id: str, version: str) -> None:
    """Put HealthImaging's ``Image Set Copied`` for a version of an image set on the default bus, by hand."""
    detail = {
        "imagingVersion": "1.0",
        "isPrimary": True,
        "imageSetVersion": version,
        "datastoreId": rt.datastore_id,
        "imagesetId": image_set_id,  # the devguide's spelling
        "imageSetState": "ACTIVE",
        "imageSetWorkflowStatus": "COPIED",
    }
    entry = {"Source": "aws.medical-imaging", "DetailType": IMAGE_SET_COPIED, "Detail": json.dumps(detail)}
    assert rt.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0
