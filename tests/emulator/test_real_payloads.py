"""The emulator's responses, events and import output against real ones, and the import planner on real output.

Real payloads may lack members that arrived later (``imageSetArn``, ``isPrimary``): the emulator answers with every
member a real payload has, and those payloads fit botocore's model too.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from hicopy.adapters.healthimaging import HealthImaging, PlannerImaging
from hicopy.domain.import_output import MANIFEST, read_import_result
from hicopy.domain.imports import plan_jobs
from hicopy.domain.ports import CopyRequest
from hicopy.errors import Handling, ImageSetConflict, ImageSetNotFound, OrchestratorError
from offline.healthimaging import HealthImagingEmulator, install, model
from offline.healthimaging.events import aws_event
from tests.emulator.conftest import NO_RETRIES, REGION
from tests.emulator.helpers import client_error, copy_request
from tests.emulator.real_data import load, metadata_document

# ------------------------------------------------------------------------------------------------------- responses


def _as_parsed(value: Any) -> Any:
    """A CLI-printed payload as botocore would parse it (ISO timestamp strings -> datetime)."""
    if isinstance(value, dict):
        return {k: _as_parsed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_parsed(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", value):
        return datetime.fromisoformat(value)
    return value


@pytest.mark.parametrize(
    ("operation", "name"),
    [
        ("CopyImageSet", "cli-copy-image-set-new-destination"),
        ("CopyImageSet", "cli-copy-image-set-existing-destination"),
        ("GetImageSet", "cli-get-image-set"),
        ("ListImageSetVersions", "cli-list-image-set-versions"),
        ("SearchImageSets", "cli-search-image-sets-equal"),
    ],
)
def test_real_responses_fit_the_model_the_emulator_validates_against(operation: str, name: str) -> None:
    assert model.validate_response(operation, _as_parsed(load(f"responses/{name}.json"))) == []


def _keys(items: list[dict[str, Any]]) -> set[str]:
    return {k for item in items for k in item}


def test_copy_get_list_and_search_answer_with_the_members_of_real_responses(emu, mi, ds, clock) -> None:
    source = emu.seed_image_set(ds)
    new = copy_request(mi, source)
    real_new = load("responses/cli-copy-image-set-new-destination.json")
    for side in ("sourceImageSetProperties", "destinationImageSetProperties"):
        assert real_new[side].keys() <= new[side].keys()
        for member in ("imageSetState", "imageSetWorkflowStatus"):
            assert new[side][member] == real_new[side][member]
    clock.advance(2)
    destination = new["destinationImageSetProperties"]
    into = copy_request(
        mi, emu.seed_image_set(ds, is_primary=False), destination=_seeded(emu, ds, destination), force=True
    )
    real_into = load("responses/cli-copy-image-set-existing-destination.json")
    assert real_into["destinationImageSetProperties"].keys() <= into["destinationImageSetProperties"].keys()
    assert into["destinationImageSetProperties"]["latestVersionId"] == "2"  # a new version of the destination
    clock.advance(2)

    got = mi.get_image_set(datastoreId=ds, imageSetId=destination["imageSetId"], versionId="1")
    assert load("responses/cli-get-image-set.json").keys() <= got.keys()
    listed = mi.list_image_set_versions(datastoreId=ds, imageSetId=destination["imageSetId"])
    real_versions = load("responses/cli-list-image-set-versions.json")["imageSetPropertiesList"]
    assert _keys(real_versions) - {"message"} <= _keys(listed["imageSetPropertiesList"])  # message: failed only
    found = mi.search_image_sets(datastoreId=ds)["imageSetsMetadataSummaries"][0]
    real_found = load("responses/cli-search-image-sets-equal.json")["imageSetsMetadataSummaries"][0]
    assert real_found.keys() <= found.keys() and real_found["DICOMTags"].keys() <= found["DICOMTags"].keys()


def _seeded(emu: HealthImagingEmulator, ds: str, properties: dict[str, Any]) -> Any:
    """A copy's destination, as ``copy_request`` takes it (id and latest version)."""
    image_set_id = properties["imageSetId"]
    return SimpleNamespace(image_set_id=image_set_id, version_id=emu.image_set(ds, image_set_id)["versionId"])


@pytest.mark.parametrize(("first_version", "source"), [(1, "the JS example's capture"), (2, "the CLI example")])
def test_first_version_of_a_copy_made_image_set_either_way(clock, first_version: int, source: str) -> None:
    """Sources disagree on a new image set's first version: ``first_copy_version`` answers either way."""
    emu = HealthImagingEmulator(clock=clock, background=False, throttling=False, first_copy_version=first_version)
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        ds = emu.create_datastore()
        made = copy_request(mi, emu.seed_image_set(ds))["destinationImageSetProperties"]["latestVersionId"]
        assert made == str(first_version), source
    real = load("responses/cli-copy-image-set-new-destination.json")["destinationImageSetProperties"]
    assert real["latestVersionId"] == "2"


# ---------------------------------------------------------------------------------------------------------- errors


def test_stale_version_answer_is_the_one_production_code_expects(emu, mi, ds) -> None:
    real = load("errors/grand-challenge-stale-version.json")["Error"]
    image_set = emu.seed_image_set(ds, is_primary=False)
    update = client_error(
        mi.update_image_set_metadata,
        datastoreId=ds,
        imageSetId=image_set.image_set_id,
        latestVersionId="2",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )
    copy = client_error(copy_request, mi, image_set, source_version="2")
    for error in (update, copy):
        assert {k: error[k] for k in real} == real and error["HTTPStatusCode"] == 404


def _stale_copy(emu: HealthImagingEmulator, mi: Any, ds: str, answer: str) -> Exception:
    """What the orchestrator's adapter raises for a CopyImageSet with a stale source version."""
    emu.settings.stale_version_error = answer
    source = emu.seed_image_set(ds)
    with pytest.raises(OrchestratorError) as caught:
        HealthImaging(mi).copy_image_set(CopyRequest(ds, source.image_set_id, "2", None, None, None))
    return caught.value


def test_the_orchestrator_retries_a_stale_version_answered_with_409(emu, mi, ds) -> None:
    assert isinstance(_stale_copy(emu, mi, ds, "ConflictException"), ImageSetConflict)


def test_the_orchestrator_retries_a_stale_version_answered_with_404(emu, mi, ds) -> None:
    error = _stale_copy(emu, mi, ds, "ResourceNotFoundException")
    assert error.handling is not Handling.TERMINAL and not isinstance(error, ImageSetNotFound)
    assert isinstance(error, ImageSetConflict)  # a version race: re-read, retried (bounded)


# ---------------------------------------------------------------------------------------------------------- events

REAL_COPY_EVENTS = {
    "Image Set Copying": "devguide-image-set-copying",
    "Image Set Copying With Read Only Access": "devguide-image-set-copying-with-read-only-access",
    "Image Set Copied": "devguide-image-set-copied",
    "Image Set Copy Failed": "devguide-image-set-copy-failed",
}


@pytest.mark.parametrize("id_key", ["imagesetId", "imageSetId"])
def test_copy_events_have_the_shape_of_real_events(clock, id_key: str) -> None:
    """``event_id_key="imagesetId"``: the developer guide's detail keys exactly; the default ``imageSetId``: the key
    of the captured event (whose other keys the emulator has too)."""
    emu = HealthImagingEmulator(clock=clock, background=False, throttling=False, event_id_key=id_key)
    ds = emu.create_datastore()
    source, destination = emu.seed_image_set(ds), emu.seed_image_set(ds, is_primary=False)
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        copy_request(mi, source)
        clock.advance(2)
        emu.fail_next_copy("INVALID_REQUEST:  Series of SourceImageSet and DestinationImageSet don't match.")
        copy_request(mi, emu.seed_image_set(ds, is_primary=False), destination=destination)
        clock.advance(2)
        emu.tick()
    emitted = {e.detail_type: e for e in emu.events}
    assert REAL_COPY_EVENTS.keys() <= emitted.keys()
    for detail_type, name in REAL_COPY_EVENTS.items():
        real = load(f"events/{name}.json")
        event = aws_event(detail_type, emitted[detail_type].detail, emitted[detail_type].resources, **_where(emu))
        assert event.keys() == real.keys()
        real_detail = {("imageSetId" if k == "imagesetId" else k): v for k, v in real["detail"].items()}
        expected = real["detail"].keys() if id_key == "imagesetId" else real_detail.keys()
        assert event["detail"].keys() == expected
        assert [event["detail"][k] for k in ("imageSetState", "imageSetWorkflowStatus")] == [
            real["detail"][k] for k in ("imageSetState", "imageSetWorkflowStatus")
        ]
        assert re.fullmatch(
            r"arn:aws:medical-imaging:[a-z0-9-]+:\d{12}:datastore/\w{32}/imageset/\w{32}", event["resources"][0]
        )
    captured = load("events/captured-image-set-created-2024-10-12.json")
    if id_key == "imageSetId":
        assert captured["detail"].keys() <= emitted["Image Set Copied"].detail.keys()


def _where(emu: HealthImagingEmulator) -> dict[str, Any]:
    return {"account": emu.account, "region": emu.region, "time": emu.clock.now()}


def test_import_job_event_and_manifest_have_the_shape_of_real_ones(emu, ds) -> None:
    written: dict[str, bytes] = {}
    job_id = emu.simulate_import(
        ds,
        input_s3_uri="s3://healthimaging/inputs/upload/",
        output_s3_uri="s3://healthimaging/logs/",
        image_sets=[metadata_document("grand-challenge-ct-2025.json")],
        write_manifest=written.__setitem__,
    )
    [completed] = [e for e in emu.events if e.detail_type == "Import Job Completed"]
    guide = load("events/devguide-import-job-completed.json")
    production = load("imports/grand-challenge-import-job-event-detail.json")
    assert completed.detail.keys() == guide["detail"].keys() == production.keys()
    # outputS3Uri: the per-job folder, as grand-challenge's fixture has it (the guide's example shows the prefix).
    assert completed.detail["outputS3Uri"] == f"s3://healthimaging/logs/{ds}-DicomImport-{job_id}/"
    assert re.fullmatch(r"s3://[^/]+/logs/\w{32}-DicomImport-\w{32}/", production["outputS3Uri"])
    summary = json.loads(written[completed.detail["outputS3Uri"] + MANIFEST])["jobSummary"]
    real = load("imports/grand-challenge-job-summary.json")["jobSummary"]
    assert real.keys() <= summary.keys()
    assert summary["imageSetsSummary"][0].keys() == real["imageSetsSummary"][0].keys()


# --------------------------------------------------------------------------------------------------------- planner


class _Output:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def read(self, uri: str) -> bytes | None:
        return self.objects.get(uri)


def test_import_planner_reads_real_import_output_and_plans_on_a_real_document(emu, mi) -> None:
    """grand-challenge's event and manifest through the planner's reader; then, as grand-challenge's own test does,
    the image set made non-primary: the planner finds the primary holding its series in the emulator (seeded with the
    real metadata document) and plans a merge into it."""
    detail = load("imports/grand-challenge-import-job-event-detail.json")
    manifest = load("imports/grand-challenge-job-summary.json")
    objects = {detail["outputS3Uri"] + MANIFEST: json.dumps(manifest).encode()}
    result = read_import_result(detail, _Output(objects))
    [entry] = result.image_sets
    assert (entry.image_set_id, entry.is_primary, entry.version, entry.matched_instances) == (
        "e616d1f717da6f80fed6271ad184b7f0",
        True,
        1,
        1,
    )
    planner_imaging = PlannerImaging(HealthImaging(mi))
    assert plan_jobs(result, planner_imaging, policy="consolidate") == []

    document = metadata_document("grand-challenge-ct-2025.json")
    ds = emu.create_datastore(datastore_id=detail["datastoreId"])
    primary = emu.seed_image_set_from_metadata(ds, document)
    emu.seed_image_set_from_metadata(ds, document, is_primary=False, image_set_id=entry.image_set_id)
    manifest["jobSummary"]["imageSetsSummary"][0]["isPrimary"] = False
    objects[detail["outputS3Uri"] + MANIFEST] = json.dumps(manifest).encode()
    [planned] = plan_jobs(read_import_result(detail, _Output(objects)), planner_imaging, policy="consolidate")
    assert planned.job["source"] == {"imageSetId": entry.image_set_id}
    assert planned.job["destination"] == {"imageSetId": primary.image_set_id}
    assert planned.trigger["action"] == "merge"
