"""``WorkflowState.copy_seconds``: the copy duration the Publish task reports as ``CopyDurationSeconds``."""

from __future__ import annotations

from typing import Any

import pytest

from hicopy.clock import iso, parse_iso
from hicopy.domain.state import WorkflowState

T0 = 1_800_000_000.0


def state(submitted: float | None, *completed: float) -> WorkflowState:
    data: dict[str, Any] = {
        "job": {"jobId": "j", "datastoreId": "a" * 32, "source": {"imageSetId": "b" * 32}},
        "trigger": {"type": "sqs", "messageId": "m"},
        "receivedAt": iso(T0 - 5),
        "completed": [
            {"index": i, "destination": {"imageSetId": "c" * 32}, "statusChecks": 1, "completedAt": iso(t)}
            for i, t in enumerate(completed)
        ],
    }
    if submitted is not None:
        data["submittedAt"] = iso(submitted)
    return WorkflowState.model_validate(data)


def test_from_the_first_submission_to_the_last_completed_chunk():
    assert state(T0, T0 + 12.5).copy_seconds() == pytest.approx(12.5)
    assert state(T0, T0 + 10, T0 + 25, T0 + 3600.25).copy_seconds() == pytest.approx(3600.25)


def test_none_without_a_submission_or_a_completed_chunk():
    assert state(None).copy_seconds() is None
    assert state(T0).copy_seconds() is None
    assert state(None, T0 + 10).copy_seconds() is None


def test_never_negative():
    assert state(T0 + 1, T0).copy_seconds() == 0.0


def test_parse_iso_reads_what_iso_writes():
    assert parse_iso(iso(T0 + 0.123)) == pytest.approx(T0 + 0.123)
    assert parse_iso("2026-11-27T00:00:00.000Z") == 1_795_737_600.0
