"""CopyImageSet semantics through a real boto3 client."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from offline.clock import ManualClock, ScaledClock
from offline.healthimaging import HealthImagingEmulator, copiable_attributes, install
from tests.emulator.conftest import NO_RETRIES, REGION
from tests.emulator.helpers import assert_stale, client_error, copy_request, same_series_other_instances


def _get(mi: Any, ds: str, image_set_id: str, version: str | None = None) -> dict[str, Any]:
    kwargs = {"versionId": version} if version else {}
    result: dict[str, Any] = mi.get_image_set(datastoreId=ds, imageSetId=image_set_id, **kwargs)
    return result


def test_whole_copy_to_a_new_image_set(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds, series=2, instances_per_series=3)
    response = copy_request(mi, source)

    src, dst = response["sourceImageSetProperties"], response["destinationImageSetProperties"]
    assert response["datastoreId"] == ds
    assert (src["imageSetId"], src["latestVersionId"]) == (source.image_set_id, "1")
    assert (src["imageSetState"], src["imageSetWorkflowStatus"]) == ("LOCKED", "COPYING_WITH_READ_ONLY_ACCESS")
    assert dst["imageSetId"] != source.image_set_id
    assert (dst["latestVersionId"], dst["imageSetState"], dst["imageSetWorkflowStatus"]) == ("1", "LOCKED", "COPYING")
    assert dst["imageSetArn"].endswith(f"datastore/{ds}/imageset/{dst['imageSetId']}")

    clock.advance(1.9)
    assert _get(mi, ds, dst["imageSetId"])["imageSetState"] == "LOCKED"
    clock.advance(0.2)
    done = _get(mi, ds, dst["imageSetId"])
    assert (done["imageSetState"], done["imageSetWorkflowStatus"], done["isPrimary"]) == ("ACTIVE", "COPIED", False)
    assert _get(mi, ds, source.image_set_id)["imageSetState"] == "ACTIVE"
    copied = emu.metadata(ds, dst["imageSetId"])
    assert {uid: list(s["Instances"]) for uid, s in copied["Study"]["Series"].items()} == source.instances
    assert copied["ImageSetID"] == dst["imageSetId"]
    assert copied["Patient"] == source.metadata["Patient"]


def test_copy_into_existing_destination_merges_and_bumps_version(emu, mi, ds, clock) -> None:
    primary = emu.seed_image_set(ds, instances_per_series=2)
    other = emu.seed_image_set_from_metadata(
        ds, same_series_other_instances(primary.metadata, count=1), is_primary=False
    )
    response = copy_request(mi, other, destination=primary)
    assert response["destinationImageSetProperties"]["latestVersionId"] == "2"
    assert response["destinationImageSetProperties"]["imageSetId"] == primary.image_set_id

    clock.advance(2)
    done = _get(mi, ds, primary.image_set_id)
    assert (done["versionId"], done["imageSetWorkflowStatus"], done["isPrimary"]) == ("2", "COPIED", True)
    merged = emu.metadata(ds, primary.image_set_id)
    series_uid = primary.series_uids[0]
    assert set(merged["Study"]["Series"][series_uid]["Instances"]) == set(
        primary.instances[series_uid] + other.instances[series_uid]
    )
    # Version 1 still holds the old content.
    assert set(emu.metadata(ds, primary.image_set_id, version=1)["Study"]["Series"][series_uid]["Instances"]) == set(
        primary.instances[series_uid]
    )
    versions = mi.list_image_set_versions(datastoreId=ds, imageSetId=primary.image_set_id)["imageSetPropertiesList"]
    assert [v["versionId"] for v in versions] == ["2", "1"]


def test_subset_copy_by_series_keyed_copiable_attributes(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds, series=2, instances_per_series=3)
    series_uid = source.series_uids[1]
    chosen = source.instances[series_uid][:2]
    response = copy_request(mi, source, copiable=copiable_attributes({series_uid: chosen}))
    clock.advance(2)
    dst_id = response["destinationImageSetProperties"]["imageSetId"]
    assert _get(mi, ds, dst_id)["imageSetWorkflowStatus"] == "COPIED"
    copied = emu.metadata(ds, dst_id)["Study"]["Series"]
    assert list(copied) == [series_uid]
    assert list(copied[series_uid]["Instances"]) == chosen


def test_schema_version_as_number_is_accepted(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds, instances_per_series=2)
    uid = source.series_uids[0]
    copiable = copiable_attributes({uid: source.instances[uid][:1]}, schema_version=1.1)
    assert '"SchemaVersion":1.1' in copiable
    dst_id = copy_request(mi, source, copiable=copiable)["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    assert _get(mi, ds, dst_id)["imageSetWorkflowStatus"] == "COPIED"


def test_sdk_example_image_set_id_key_ends_copy_failed_with_message(emu, mi, ds, clock) -> None:
    """The AWS SDK examples key Series by the literal "imageSetId": the call is accepted, the copy fails."""
    source = emu.seed_image_set(ds, instances_per_series=2)
    sdk_style: dict[str, Any] = {"SchemaVersion": "1.1", "Study": {"Series": {"imageSetId": {"Instances": {}}}}}
    sdk_style["Study"]["Series"]["imageSetId"]["Instances"][source.instances[source.series_uids[0]][0]] = {}
    response = copy_request(mi, source, copiable=json.dumps(sdk_style))
    dst_id = response["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    failed = _get(mi, ds, dst_id)
    assert (failed["imageSetState"], failed["imageSetWorkflowStatus"]) == ("ACTIVE", "COPY_FAILED")
    assert "Series imageSetId" in failed["message"]
    assert failed["message"].startswith("INVALID_REQUEST:")
    source_now = _get(mi, ds, source.image_set_id)
    assert (source_now["imageSetState"], source_now["imageSetWorkflowStatus"]) == ("ACTIVE", "CREATED")
    assert emu.metadata(ds, dst_id)["Study"]["Series"] == {}


def test_unknown_sop_instance_ends_copy_failed(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds)
    copiable = copiable_attributes({source.series_uids[0]: ["1.2.3.4"]})
    dst_id = copy_request(mi, source, copiable=copiable)["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    failed = _get(mi, ds, dst_id)
    assert failed["imageSetWorkflowStatus"] == "COPY_FAILED"
    assert "SOP Instance 1.2.3.4" in failed["message"]


def test_malformed_copiable_attributes_is_a_validation_error(emu, mi, ds) -> None:
    source = emu.seed_image_set(ds)
    error = client_error(copy_request, mi, source, copiable='{"SchemaVersion": "1.1", "Study": ')
    assert (error["Code"], error["HTTPStatusCode"]) == ("ValidationException", 400)
    assert emu.image_set(ds, source.image_set_id)["imageSetState"] == "ACTIVE"


def test_metadata_mismatch_without_force_fails_and_with_force_copies(emu, mi, ds, clock) -> None:
    primary = emu.seed_image_set(ds, patient_id="PAT-1")
    conflicting = same_series_other_instances(primary.metadata, count=1)
    conflicting["Patient"]["DICOM"]["PatientID"] = "PAT-2"
    other = emu.seed_image_set_from_metadata(ds, conflicting, is_primary=False)

    first = copy_request(mi, other, destination=primary)["destinationImageSetProperties"]
    clock.advance(2)
    failed = _get(mi, ds, primary.image_set_id)
    assert (failed["versionId"], failed["imageSetWorkflowStatus"]) == (first["latestVersionId"], "COPY_FAILED")
    assert failed["message"] == "INVALID_REQUEST:  Patient of SourceImageSet and DestinationImageSet don't match."
    assert "overrides" not in failed
    # The failed copy consumed version 2; the metadata did not change.
    assert emu.metadata(ds, primary.image_set_id)["Study"] == emu.metadata(ds, primary.image_set_id, 1)["Study"]

    second = copy_request(mi, other, destination=primary, destination_version="2", force=True)
    assert second["destinationImageSetProperties"]["latestVersionId"] == "3"
    clock.advance(2)
    forced = _get(mi, ds, primary.image_set_id)
    assert (forced["imageSetWorkflowStatus"], forced["overrides"]) == ("COPIED", {"forced": True})
    merged = emu.metadata(ds, primary.image_set_id)
    assert merged["Patient"]["DICOM"]["PatientID"] == "PAT-1"  # destination's Patient level unchanged
    uid = primary.series_uids[0]
    assert set(merged["Study"]["Series"][uid]["Instances"]) == set(primary.instances[uid] + other.instances[uid])


def test_value_padding_is_not_a_metadata_mismatch(emu, mi, ds, clock) -> None:
    """``"1 "`` (the 2025 documents) and ``"1"`` (the 2023 one) are the same IS value: no mismatch, no force."""
    primary = emu.seed_image_set(ds)
    unpadded = same_series_other_instances(primary.metadata, count=1)
    (series,) = unpadded["Study"]["Series"].values()
    assert series["DICOM"]["SeriesNumber"] == "1 "
    series["DICOM"]["SeriesNumber"] = "1"
    copy_request(mi, emu.seed_image_set_from_metadata(ds, unpadded, is_primary=False), destination=primary)
    clock.advance(2)
    assert _get(mi, ds, primary.image_set_id)["imageSetWorkflowStatus"] == "COPIED"
    series["DICOM"]["SeriesNumber"] = "2"  # a different value still is one
    other = same_series_other_instances(unpadded, count=1)
    copy_request(mi, emu.seed_image_set_from_metadata(ds, other, False), destination=primary, destination_version="2")
    clock.advance(2)
    assert "Series of SourceImageSet" in _get(mi, ds, primary.image_set_id)["message"]


def test_series_mismatch_message(emu, mi, ds, clock) -> None:
    first = emu.seed_image_set(ds, patient_id="P", study_uid="1.2.3")
    second = emu.seed_image_set(ds, patient_id="P", study_uid="1.2.3", is_primary=False)
    second_meta = second.metadata
    second_meta["Patient"] = first.metadata["Patient"]
    second_meta["Study"]["DICOM"] = first.metadata["Study"]["DICOM"]
    aligned = emu.seed_image_set_from_metadata(ds, second_meta, is_primary=False)
    copy_request(mi, aligned, destination=first)
    clock.advance(2)
    assert _get(mi, ds, first.image_set_id)["message"] == (
        "INVALID_REQUEST:  Series of SourceImageSet and DestinationImageSet don't match."
    )


def test_sop_instance_collision_fails(emu, mi, ds, clock) -> None:
    primary = emu.seed_image_set(ds)
    duplicate = emu.seed_image_set_from_metadata(ds, primary.metadata, is_primary=False)
    copy_request(mi, duplicate, destination=primary)
    clock.advance(2)
    assert "SOP Instance UIDs" in _get(mi, ds, primary.image_set_id)["message"]


def test_promote_to_primary_creates_a_new_primary(emu, mi, ds, clock) -> None:
    non_primary = emu.seed_image_set(ds, is_primary=False, instances_per_series=2)
    response = copy_request(mi, non_primary, promoteToPrimary=True)
    new_id = response["destinationImageSetProperties"]["imageSetId"]
    assert new_id != non_primary.image_set_id
    clock.advance(2)
    promoted = _get(mi, ds, new_id)
    assert (promoted["isPrimary"], promoted["imageSetWorkflowStatus"]) == (True, "COPIED")
    assert _get(mi, ds, non_primary.image_set_id)["isPrimary"] is False


def test_promote_merges_into_the_existing_primary_of_the_series(emu, mi, ds, clock) -> None:
    primary = emu.seed_image_set(ds)
    other = emu.seed_image_set_from_metadata(ds, same_series_other_instances(primary.metadata, 1), False)
    response = copy_request(mi, other, promoteToPrimary=True)
    dst = response["destinationImageSetProperties"]
    assert (dst["imageSetId"], dst["latestVersionId"]) == (primary.image_set_id, "2")
    clock.advance(2)
    assert _get(mi, ds, primary.image_set_id)["imageSetWorkflowStatus"] == "COPIED"


def test_promote_with_destination_is_rejected(emu, mi, ds) -> None:
    primary = emu.seed_image_set(ds)
    other = emu.seed_image_set(ds, is_primary=False)
    error = client_error(copy_request, mi, other, destination=primary, promoteToPrimary=True)
    assert error["Code"] == "ValidationException"


def test_non_primary_source_without_promote_gives_non_primary_copy(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds, is_primary=False)
    dst_id = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    assert _get(mi, ds, dst_id)["isPrimary"] is False


def test_stale_version_answers_either_way(emu, mi, ds, stale_answer) -> None:
    """A stale source or destination ``latestVersionId``: 404 "... is not the latest." (default) or 409."""
    source = emu.seed_image_set(ds)
    assert_stale(client_error(copy_request, mi, source, source_version="2"), stale_answer)
    destination = emu.seed_image_set(ds, is_primary=False)
    error = client_error(copy_request, mi, source, destination=destination, destination_version="5")
    assert_stale(error, stale_answer)
    assert emu.pending() == 0  # nothing was started


def test_stale_version_default_follows_the_production_evidence(clock) -> None:
    assert HealthImagingEmulator(clock=clock, background=False).settings.stale_version_error == (
        "ResourceNotFoundException"
    )
    with pytest.raises(ValueError, match="stale_version_error"):
        HealthImagingEmulator(clock=clock, background=False, stale_version_error="ValidationException")


def test_locked_source_or_destination_is_a_conflict(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds)
    copy_request(mi, source)  # source now LOCKED / COPYING_WITH_READ_ONLY_ACCESS
    error = client_error(copy_request, mi, source)
    assert error["Code"] == "ConflictException"
    assert "LOCKED" in error["Message"]

    destination = emu.seed_image_set(ds, is_primary=False)
    other = emu.seed_image_set(ds, is_primary=False)
    emu.lock(ds, destination.image_set_id, seconds=10)
    assert _get(mi, ds, destination.image_set_id)["imageSetWorkflowStatus"] == "UPDATING"
    assert client_error(copy_request, mi, other, destination=destination)["Code"] == "ConflictException"
    clock.advance(10)
    assert _get(mi, ds, destination.image_set_id)["imageSetState"] == "ACTIVE"
    copy_request(mi, other, destination=destination, force=True)


def test_lock_with_version_bump_makes_held_version_stale(emu, mi, ds, clock, stale_answer) -> None:
    destination = emu.seed_image_set(ds, is_primary=False)
    other = emu.seed_image_set(ds, is_primary=False)
    emu.lock(ds, destination.image_set_id, seconds=1, bump_version=True)
    clock.advance(1)
    assert_stale(client_error(copy_request, mi, other, destination=destination), stale_answer)
    copy_request(mi, other, destination=destination, destination_version="2", force=True)


def test_fail_next_copy(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds)
    emu.fail_next_copy("INVALID_REQUEST:  injected for a test.")
    first = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    second = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    assert _get(mi, ds, first)["message"] == "INVALID_REQUEST:  injected for a test."
    assert _get(mi, ds, second)["imageSetWorkflowStatus"] == "COPIED"
    with pytest.raises(ValueError, match="Message pattern"):
        emu.fail_next_copy("bad {braces}")


def test_per_copy_durations(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds)
    emu.copy_durations.append(10.0)
    dst = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
    assert emu.pending() == 1
    clock.advance(5)
    assert _get(mi, ds, dst)["imageSetState"] == "LOCKED"
    clock.advance(5)
    assert _get(mi, ds, dst)["imageSetState"] == "ACTIVE"
    emu.set_copy_duration(lambda src, dst: 0.5)
    dst = copy_request(mi, source, source_version="1")["destinationImageSetProperties"]["imageSetId"]
    clock.advance(0.5)
    assert _get(mi, ds, dst)["imageSetWorkflowStatus"] == "COPIED"


def test_frame_quota(emu, mi, ds, clock) -> None:
    big = emu.seed_image_set(ds, series=1, instances_per_series=11, frames_per_instance=100)
    assert big.frames == 1100
    error = client_error(copy_request, mi, big)
    assert error["Code"] == "ValidationException"
    assert "1100 ImageFrames" in error["Message"]
    uid = big.series_uids[0]
    copy_request(mi, big, copiable=copiable_attributes({uid: big.instances[uid][:10]}))  # 1000 frames: fine


def test_frame_quota_error_and_limit_are_configurable(clock) -> None:
    emu = HealthImagingEmulator(
        clock=clock,
        throttling=False,
        background=False,
        max_frames_per_copy=2,
        frame_quota_error="ServiceQuotaExceededException",
    )
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        source = emu.seed_image_set(ds, instances_per_series=3)
        error = client_error(copy_request, mi, source)
        assert (error["Code"], error["HTTPStatusCode"]) == ("ServiceQuotaExceededException", 402)


def test_concurrent_copy_quota(clock) -> None:
    emu = HealthImagingEmulator(clock=clock, throttling=False, background=False, max_concurrent_copies=2)
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        sources = [emu.seed_image_set(ds) for _ in range(3)]
        copy_request(mi, sources[0])
        copy_request(mi, sources[1])
        error = client_error(copy_request, mi, sources[2])
        assert (error["Code"], error["HTTPStatusCode"]) == ("ServiceQuotaExceededException", 402)
        clock.advance(2)
        copy_request(mi, sources[2])


def test_async_completion_with_a_scaled_clock_and_background_ticker() -> None:
    """100 virtual seconds of copy time pass in ~0.1 s; the ticker emits events without anyone polling."""
    seen: list[str] = []
    emu = HealthImagingEmulator(
        clock=ScaledClock(0.001), copy_duration=100.0, throttling=False, event_sink=lambda t, d, r: seen.append(t)
    )
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        source = emu.seed_image_set(ds)
        dst = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
        assert _get(mi, ds, dst)["imageSetState"] == "LOCKED"
        deadline = time.monotonic() + 5
        while "Image Set Copied" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "Image Set Copied" in seen
        assert len(emu.calls) == 2  # nobody polled after the first GetImageSet
        assert _get(mi, ds, dst)["imageSetWorkflowStatus"] == "COPIED"


def test_copy_events(emu, mi, ds, clock, events) -> None:
    source = emu.seed_image_set(ds)
    dst = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
    clock.advance(2)
    emu.tick()
    src_arn = emu.image_set_arn(ds, source.image_set_id)
    dst_arn = emu.image_set_arn(ds, dst)
    assert [(t, r) for t, _, r in events] == [
        ("Image Set Copying", [dst_arn]),
        ("Image Set Copying With Read Only Access", [src_arn]),
        ("Image Set Copied", [dst_arn]),
        ("Image Set Copied", [src_arn]),
    ]
    copying = events[0][1]
    assert copying == {
        "imagingVersion": "1.0",
        "isPrimary": False,
        "imageSetVersion": "1",
        "datastoreId": ds,
        "imageSetId": dst,
        "imageSetState": "LOCKED",
        "imageSetWorkflowStatus": "COPYING",
        "sourceImageSetArn": src_arn,
    }
    assert events[2][1]["imageSetState"] == "ACTIVE"


def test_copy_failed_event_and_doc_spelling_of_the_id_key() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    clock = ManualClock()
    emu = HealthImagingEmulator(
        clock=clock,
        throttling=False,
        background=False,
        event_id_key="imagesetId",
        event_sink=lambda t, d, r: seen.append((t, d)),
    )
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        source = emu.seed_image_set(ds)
        emu.fail_next_copy()
        dst = copy_request(mi, source)["destinationImageSetProperties"]["imageSetId"]
        clock.advance(2)
        emu.tick()
    failed = [d for t, d in seen if t == "Image Set Copy Failed"]
    assert failed and failed[0]["imagesetId"] == dst and "imageSetId" not in failed[0]
    assert failed[0]["imageSetWorkflowStatus"] == "COPY_FAILED"
