"""Post-import delete-after on the local runtime: a source is deleted only for a job the import planner planned
(checked against the planner's record, never the message) and only once the destination holds all of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from hicopy.contract import SUCCEEDED
from offline.healthimaging import SeedSpec, copying
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event, sop_uids


@pytest.fixture
def rt(make_runtime: Callable[..., LocalRuntime]) -> LocalRuntime:
    return make_runtime(config_overrides={"deleteAfterConsolidate": True})


def _source_state(rt: LocalRuntime, image_set_id: str) -> str:
    return str(rt.emulator.image_set(rt.datastore_id, image_set_id)["imageSetState"])


def _import_a_non_primary_image_set(rt: LocalRuntime) -> None:
    """An import whose image set conflicts with an existing primary (another PatientID): the planner plans one
    whole merge of it into the primary, with delete-after."""
    primary = rt.seed_image_set(series=1, instances_per_series=2)
    conflicting = SeedSpec(
        series=1,
        instances_per_series=3,
        study_uid=primary.study_uid,
        series_uids=(primary.series_uids[0],),
        patient_id="ANOTHER-PATIENT",
    )
    rt.simulate_import(image_sets=[conflicting])
    rt.run_until_idle(timeout=90)


def test_a_senders_trigger_never_deletes_the_source(rt: LocalRuntime) -> None:
    """The reproduced attack: any queue sender may set ``hicopyTrigger``. Its one-instance subset copy of a
    six-instance source asks for the deletion; the planner never planned it, so nothing is deleted."""
    source = rt.seed_image_set(series=2, instances_per_series=3)
    one = source.instances[source.series_uids[0]][0]
    forged = json.dumps({"type": "import", "importJobId": "0" * 32, "deleteSourceAfterCopy": True})
    rt.send_job(
        {
            "jobId": "forged-delete",
            "datastoreId": rt.datastore_id,
            "source": {"imageSetId": source.image_set_id},
            "instances": [one],
        },
        attributes={"hicopyTrigger": forged},
    )
    rt.run_until_idle(timeout=90)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    deletion = event["detail"]["sourceDeletion"]
    assert deletion["status"] == "REFUSED", deletion
    assert "the import planner did not plan this job" in deletion["message"]
    assert rt.emulator.calls_to("DeleteImageSet") == []
    assert _source_state(rt, source.image_set_id) == "ACTIVE"
    assert len(sop_uids(rt.emulator.metadata(rt.datastore_id, source.image_set_id))) == 6


def test_the_planned_whole_copy_deletes_its_source(rt: LocalRuntime) -> None:
    _import_a_non_primary_image_set(rt)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    assert event["detail"]["sourceDeletion"] == {"status": "DELETED"}
    [deleted] = rt.emulator.calls_to("DeleteImageSet")
    assert deleted.params["imageSetId"] == event["detail"]["source"]["imageSetId"]


def test_a_planned_copy_whose_destination_misses_an_instance_deletes_nothing(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service reports the merge COPIED, but the destination version lacks one of the source's instances:
    the source is the only complete copy, so it is kept."""
    merge_into = copying.merge_into

    def loses_one_instance(metadata: dict[str, Any], payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
        merged = merge_into(metadata, payload, **kw)
        series = next(iter(payload["Study"]["Series"]))
        lost = next(iter(payload["Study"]["Series"][series]["Instances"]))
        del merged["Study"]["Series"][series]["Instances"][lost]
        return merged

    monkeypatch.setattr(copying, "merge_into", loses_one_instance)
    _import_a_non_primary_image_set(rt)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    deletion = event["detail"]["sourceDeletion"]
    assert deletion["status"] == "REFUSED", deletion
    destination = event["detail"]["destination"]
    assert (
        f"version {destination['versionId']} of the destination image set {destination['imageSetId']} misses 1 of "
        "the source's 3 instances"
    ) in deletion["message"]
    assert rt.emulator.calls_to("DeleteImageSet") == []
    assert _source_state(rt, event["detail"]["source"]["imageSetId"]) == "ACTIVE"
