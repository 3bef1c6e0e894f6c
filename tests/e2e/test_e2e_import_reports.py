"""Import reports on the local runtime (issue #12, item 7): ``Import Job Failures`` fits PutEvents whatever the
import, never stands between an import and its plan, and carries no file names or service messages by default.

moto accepts PutEvents entries of any size; AWS refuses an entry over 256 KiB. Here the runtime's EventBridge
refuses it as AWS does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from moto.events.exceptions import ValidationException
from moto.events.models import EventsBackend

from hicopy.contract import IMPORT_FAILURES, IMPORT_PLANNED, SUCCEEDED
from offline.healthimaging import SeedSpec
from offline.runtime import LocalRuntime
from tests.e2e.helpers import terminal_events
from tests.support.calls import PUT_EVENTS_ENTRY_LIMIT
from tests.support.contracts import assert_valid_event

FAILED_FILES = 3_000
PATIENT_KEY = "DOE^JANE-MRN-0042"  # what S3 keys of DICOM files often carry


def enforce_put_events_limit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every entry put; an entry over 256 KiB refused with AWS's ValidationException. Called once the
    runtime runs: its own wrapper of put_events (restored when it stops) is wrapped, and restored first."""
    sizes: list[int] = []
    put_events = EventsBackend.put_events

    def limited(backend: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in events:
            size = 14 + sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
            sizes.append(size)
            if size > PUT_EVENTS_ENTRY_LIMIT:
                raise ValidationException("Total size of the entries in the request is over the limit.")
        return put_events(backend, events)

    monkeypatch.setattr(EventsBackend, "put_events", limited)
    return sizes


def _import_with_many_failures(rt: LocalRuntime) -> tuple[str, Any]:
    primary = rt.seed_image_set(series=1, instances_per_series=2)
    conflicting = SeedSpec(
        series=1,
        instances_per_series=1,
        study_uid=primary.study_uid,
        series_uids=(primary.series_uids[0],),
        patient_id="ANOTHER-PATIENT",  # a non-primary image set: the planner merges it into the primary
    )
    # S3 keys of up to 1 KB, and service messages that quote them: 100 such failures are over 256 KiB.
    names = [f"dicom/{PATIENT_KEY}/study-{n:05d}/{'series-0001/' * 80}IM{n:06d}.dcm" for n in range(FAILED_FILES)]
    failures = [
        (name, "ValidationException", f"bad {n}: {name} " + "missing (0008,0016); " * 40)
        for n, name in enumerate(names)
    ]
    failures[0] = (failures[0][0], "UnsupportedTransferSyntax", f"file {PATIENT_KEY} rejected")
    return rt.simulate_import(image_sets=[conflicting], failures=failures), primary


def test_a_large_failure_report_fits_and_never_blocks_the_plan(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the first 100 failed files, listed verbatim, made an Import Job Failures entry of about 290 KB, refused;
    published before the jobs were queued, the import was never planned (the planner's retries, then its DLQ)."""
    sizes = enforce_put_events_limit(monkeypatch)
    import_job_id, primary = _import_with_many_failures(rt)
    rt.run_until_idle(timeout=90)

    assert all(call.ok for call in rt.invocations_of("ImportPlanner"))
    [failures] = rt.completion_events(IMPORT_FAILURES)
    [planned] = rt.completion_events(IMPORT_PLANNED)
    for event in (failures, planned):
        assert_valid_event(event["detail-type"], event["detail"], source=event["source"])
    detail = failures["detail"]
    assert detail["importJobId"] == import_job_id and detail["failedFiles"] == FAILED_FILES
    assert detail["failuresByType"] == {"UnsupportedTransferSyntax": 1, "ValidationException": FAILED_FILES - 1}
    assert detail["failureReportS3Uri"].endswith("/FAILURE/failure.ndjson")
    assert "failures" not in detail and "message" not in detail
    # No file name and no service message on the bus, anywhere.
    bus = json.dumps(rt.completion_events())
    assert PATIENT_KEY not in bus and "IM000001.dcm" not in bus and "bad 1" not in bus
    assert max(sizes) < 16 * 1024

    [event] = terminal_events(rt)
    assert event["detail-type"] == SUCCEEDED and event["detail"]["jobId"] == planned["detail"]["jobsPlanned"][0]
    assert event["detail"]["destination"]["imageSetId"] == primary.image_set_id


def test_with_import_report_details_the_names_are_listed_bounded(
    make_runtime: Callable[..., LocalRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime(config_overrides={"importReportDetails": True})
    sizes = enforce_put_events_limit(monkeypatch)
    _import_with_many_failures(rt)
    rt.run_until_idle(timeout=90)

    [failures] = rt.completion_events(IMPORT_FAILURES)
    detail = failures["detail"]
    assert_valid_event(IMPORT_FAILURES, detail, source=failures["source"])
    assert 0 < len(detail["failures"]) <= 100 and detail["failuresTruncated"] is True
    assert PATIENT_KEY in detail["failures"][0]["inputFile"]
    assert detail["failures"][0]["message"] == f"file {PATIENT_KEY} rejected"
    assert max(sizes) < PUT_EVENTS_ENTRY_LIMIT
    assert [e["detail-type"] for e in terminal_events(rt)] == [SUCCEEDED]
