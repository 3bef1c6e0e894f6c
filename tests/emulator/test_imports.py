"""Import jobs: placement into primary / merged / non-primary image sets, job output in (moto) S3, events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from offline.clock import ManualClock, ScaledClock
from offline.healthimaging import HealthImagingEmulator, SeedSpec, install
from tests.emulator.conftest import NO_RETRIES, REGION
from tests.emulator.helpers import same_series_other_instances

BUCKET = "import-bucket"
INPUT = f"s3://{BUCKET}/dicom_input/"
OUTPUT = f"s3://{BUCKET}/job_output/"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """One moto S3 for the module (starting moto per test costs ~0.5 s); job folders never collide."""
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def world(s3: Any, clock: ManualClock, events: list[Any]) -> Iterator[tuple[HealthImagingEmulator, Any, str]]:
    emu = HealthImagingEmulator(
        clock=clock, throttling=False, background=False, seed=3, event_sink=lambda t, d, r: events.append((t, d, r))
    )
    with install(emu):
        mi = boto3.client("medical-imaging", region_name=REGION, config=NO_RETRIES)
        yield emu, mi, emu.create_datastore("imports")
    assert not emu.effect_errors


def _read(s3: Any, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _ndjson(s3: Any, uri: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read(s3, uri).decode().splitlines()]


def _job_output(s3: Any, mi: Any, ds: str, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    properties = mi.get_dicom_import_job(datastoreId=ds, jobId=job_id)["jobProperties"]
    manifest = json.loads(_read(s3, properties["outputS3Uri"] + "job-output-manifest.json"))
    return properties, manifest["jobSummary"]


def test_import_creates_a_primary_image_set(world, s3, events) -> None:
    emu, mi, ds = world
    job_id = emu.simulate_import(
        ds,
        input_s3_uri=INPUT,
        output_s3_uri=OUTPUT,
        image_sets=[SeedSpec(series=1, instances_per_series=2)],
        job_name="first",
    )
    properties, summary = _job_output(s3, mi, ds, job_id)
    folder = f"{OUTPUT}{ds}-DicomImport-{job_id}/"
    assert (properties["jobStatus"], properties["jobName"], properties["outputS3Uri"]) == ("COMPLETED", "first", folder)
    assert properties["inputS3Uri"] == INPUT
    assert summary["outputS3Uri"] == folder
    assert summary["successOutputS3Uri"] == folder + "SUCCESS/"
    assert summary["failureOutputS3Uri"] == folder + "FAILURE/"
    assert summary["warningsOutputS3Uri"] == folder + "WARNING/"
    assert (summary["numberOfScannedFiles"], summary["numberOfImportedFiles"]) == (2, 2)
    assert (summary["numberOfFilesWithCustomerError"], summary["numberOfFilesWithServerError"]) == (0, 0)
    assert summary["numberOfGeneratedImageSets"] == 1
    (entry,) = summary["imageSetsSummary"]
    assert (entry["imageSetVersion"], entry["isPrimary"], entry["numberOfMatchedSOPInstances"]) == (1, True, 2)
    success = _ndjson(s3, folder + "SUCCESS/success.ndjson")
    assert len(success) == 2
    assert success[0]["inputFile"].startswith("dicom_input/") and success[0]["inputFile"].endswith(".dcm")
    assert success[0]["importResponse"] == {"imageSetId": entry["imageSetId"], "isPrimary": True}
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"job_output/{ds}-DicomImport-{job_id}/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 2)[-2:][-1] for o in listed) == ["job-output-manifest.json", "success.ndjson"]
    assert [t for t, _, _ in events] == ["Image Set Created", "Import Job Completed"]
    created, completed = events[0][1], events[1][1]
    assert (created["imageSetId"], created["isPrimary"], created["imageSetVersion"]) == (entry["imageSetId"], True, "1")
    assert completed == {
        "imagingVersion": "1.0",
        "datastoreId": ds,
        "jobId": job_id,
        "jobName": "first",
        "jobStatus": "COMPLETED",
        "inputS3Uri": INPUT,
        "outputS3Uri": folder,
    }
    assert events[1][2] == [emu.datastore_arn(ds)]
    assert mi.get_image_set(datastoreId=ds, imageSetId=entry["imageSetId"])["isPrimary"] is True


def test_import_merges_into_the_existing_primary(world, s3, events) -> None:
    emu, mi, ds = world
    primary = emu.seed_image_set(ds, instances_per_series=2)
    more = same_series_other_instances(primary.metadata, count=3)
    job_id = emu.simulate_import(ds, input_s3_uri=INPUT, output_s3_uri=OUTPUT, image_sets=[more])
    _, summary = _job_output(s3, mi, ds, job_id)
    (entry,) = summary["imageSetsSummary"]
    assert entry == {
        "imageSetId": primary.image_set_id,
        "imageSetVersion": 2,
        "isPrimary": True,
        "numberOfMatchedSOPInstances": 3,
    }
    assert [t for t, _, _ in events] == ["Image Set Updated", "Import Job Completed"]
    assert events[0][1]["imageSetVersion"] == "2"
    state = mi.get_image_set(datastoreId=ds, imageSetId=primary.image_set_id)
    assert (state["versionId"], state["imageSetWorkflowStatus"]) == ("2", "UPDATED")
    uid = primary.series_uids[0]
    assert len(emu.metadata(ds, primary.image_set_id)["Study"]["Series"][uid]["Instances"]) == 5


def test_reimport_of_the_same_instances_bumps_the_primary_version(world, s3) -> None:
    emu, mi, ds = world
    primary = emu.seed_image_set(ds, instances_per_series=2)
    job_id = emu.simulate_import(ds, input_s3_uri=INPUT, output_s3_uri=OUTPUT, image_sets=[primary])
    _, summary = _job_output(s3, mi, ds, job_id)
    assert summary["imageSetsSummary"][0]["imageSetVersion"] == 2
    assert emu.image_set(ds, primary.image_set_id)["versionId"] == "2"


def test_conflicting_metadata_creates_a_non_primary_image_set(world, s3, events) -> None:
    emu, mi, ds = world
    primary = emu.seed_image_set(ds, patient_id="PAT-1")
    conflicting = same_series_other_instances(primary.metadata, count=1)
    conflicting["Patient"]["DICOM"]["PatientID"] = "PAT-OTHER"
    job_id = emu.simulate_import(ds, input_s3_uri=INPUT, output_s3_uri=OUTPUT, image_sets=[conflicting])
    properties, summary = _job_output(s3, mi, ds, job_id)
    (entry,) = summary["imageSetsSummary"]
    assert entry["imageSetId"] != primary.image_set_id
    assert (entry["isPrimary"], entry["imageSetVersion"]) == (False, 1)
    success = _ndjson(s3, properties["outputS3Uri"] + "SUCCESS/success.ndjson")
    assert success[0]["importResponse"]["isPrimary"] is False
    assert events[0][0] == "Image Set Created" and events[0][1]["isPrimary"] is False
    found = mi.search_image_sets(
        datastoreId=ds,
        searchCriteria={
            "filters": [
                {"values": [{"DICOMSeriesInstanceUID": primary.series_uids[0]}], "operator": "EQUAL"},
                {"values": [{"isPrimary": True}], "operator": "EQUAL"},
            ]
        },
    )["imageSetsMetadataSummaries"]
    assert [s["imageSetId"] for s in found] == [primary.image_set_id]
    assert emu.image_set(ds, primary.image_set_id)["versionId"] == "1"


def test_one_image_set_per_series_and_failures_and_warnings(world, s3) -> None:
    emu, mi, ds = world
    failures = [
        (
            "dicom_input/invalidDicomFile1.dcm",
            "ValidationException",
            "DICOM attribute TransferSyntaxUID does not exist",
        ),
        ("dicom_input/other.dcm", "InternalServerException", "Internal error"),
    ]
    spec = SeedSpec(series=2, instances_per_series=2)
    job_id = emu.simulate_import(ds, input_s3_uri=INPUT, output_s3_uri=OUTPUT, image_sets=[spec], failures=failures)
    properties, summary = _job_output(s3, mi, ds, job_id)
    assert properties["jobStatus"] == "COMPLETED"  # COMPLETED even with per-file failures
    assert (summary["numberOfScannedFiles"], summary["numberOfImportedFiles"]) == (6, 4)
    assert (summary["numberOfFilesWithCustomerError"], summary["numberOfFilesWithServerError"]) == (1, 1)
    assert summary["numberOfGeneratedImageSets"] == 2
    assert [e["numberOfMatchedSOPInstances"] for e in summary["imageSetsSummary"]] == [2, 2]
    failure_lines = _ndjson(s3, properties["outputS3Uri"] + "FAILURE/failure.ndjson")
    assert failure_lines[0] == {
        "inputFile": "dicom_input/invalidDicomFile1.dcm",
        "exception": {
            "exceptionType": "ValidationException",
            "message": "DICOM attribute TransferSyntaxUID does not exist",
        },
    }

    imported = summary["imageSetsSummary"][0]["imageSetId"]
    sop = next(iter(emu.metadata(ds, imported)["Study"]["Series"].values()))["Instances"]
    again = emu.simulate_import(
        ds,
        input_s3_uri=INPUT,
        output_s3_uri=OUTPUT,
        image_sets=[emu.metadata(ds, imported)],
        warnings=[(next(iter(sop)), "InvalidOffsetTable", "invalid offset table")],
    )
    properties, _ = _job_output(s3, mi, ds, again)
    (warning,) = _ndjson(s3, properties["outputS3Uri"] + "WARNING/warning.ndjson")
    assert warning["importResponse"]["imageSetVersion"] == 2
    assert warning["importResponse"]["warnings"][0]["type"] == "InvalidOffsetTable"
    assert len(_ndjson(s3, properties["outputS3Uri"] + "SUCCESS/success.ndjson")) == 1


def test_import_job_failed(world, s3, events) -> None:
    emu, mi, ds = world
    job_id = emu.simulate_import(
        ds,
        input_s3_uri=INPUT,
        output_s3_uri=OUTPUT,
        image_sets=[SeedSpec()],
        job_status="FAILED",
        message="Access denied to the input bucket",
    )
    properties, summary = _job_output(s3, mi, ds, job_id)
    assert (properties["jobStatus"], properties["message"]) == ("FAILED", "Access denied to the input bucket")
    assert "endedAt" in properties
    assert summary["imageSetsSummary"] == []
    assert [t for t, _, _ in events] == ["Import Job Failed"]
    assert events[0][1]["jobStatus"] == "FAILED"
    assert mi.search_image_sets(datastoreId=ds)["imageSetsMetadataSummaries"] == []


def test_manifest_delay_event_first_then_manifest(s3) -> None:
    """The event goes out at once; the manifest appears 5 virtual seconds later (50 ms real), via the ticker."""
    seen: list[tuple[str, dict[str, Any]]] = []
    emu = HealthImagingEmulator(
        clock=ScaledClock(0.01), throttling=False, event_sink=lambda t, d, r: seen.append((t, d))
    )
    with install(emu):
        ds = emu.create_datastore()
        emu.simulate_import(ds, input_s3_uri=INPUT, output_s3_uri=OUTPUT, image_sets=[SeedSpec()], manifest_delay=5.0)
        (completed,) = [d for t, d in seen if t == "Import Job Completed"]
        key = completed["outputS3Uri"].removeprefix(f"s3://{BUCKET}/") + "job-output-manifest.json"
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=BUCKET, Key=key)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
                break
            except s3.exceptions.NoSuchKey:
                time.sleep(0.01)
        else:
            pytest.fail("manifest never appeared")
        assert manifest["jobSummary"]["numberOfImportedFiles"] == 1
    assert not emu.effect_errors


def test_custom_manifest_writer(clock) -> None:
    written: dict[str, bytes] = {}
    emu = HealthImagingEmulator(clock=clock, throttling=False, background=False)
    ds = emu.create_datastore()
    job_id = emu.simulate_import(
        ds,
        input_s3_uri=INPUT,
        output_s3_uri="s3://out-bucket/prefix",
        image_sets=[SeedSpec()],
        write_manifest=written.__setitem__,
    )
    folder = f"s3://out-bucket/prefix/{ds}-DicomImport-{job_id}/"
    assert sorted(written) == [folder + "SUCCESS/success.ndjson", folder + "job-output-manifest.json"]
    assert emu.import_job(ds, job_id)["outputS3Uri"] == folder


def test_start_dicom_import_job_through_the_api(world, s3, events, clock) -> None:
    emu, mi, ds = world
    emu.next_import([SeedSpec(instances_per_series=3)])
    request = {
        "datastoreId": ds,
        "dataAccessRoleArn": "arn:aws:iam::123456789012:role/ImportRole",
        "clientToken": "once",
        "inputS3Uri": INPUT,
        "outputS3Uri": OUTPUT,
        "jobName": "api-job",
    }
    started = mi.start_dicom_import_job(**request)
    assert started["jobStatus"] == "SUBMITTED"
    assert mi.start_dicom_import_job(**request)["jobId"] == started["jobId"]  # idempotent client token
    emu.tick()
    properties, summary = _job_output(s3, mi, ds, started["jobId"])
    assert (properties["jobStatus"], properties["dataAccessRoleArn"]) == ("COMPLETED", request["dataAccessRoleArn"])
    assert summary["imageSetsSummary"][0]["numberOfMatchedSOPInstances"] == 3
    assert [t for t, _, _ in events] == ["Import Job Submitted", "Image Set Created", "Import Job Completed"]
    jobs = mi.list_dicom_import_jobs(datastoreId=ds)["jobSummaries"]
    assert [j["jobId"] for j in jobs] == [started["jobId"]]


def test_import_into_a_locked_primary_is_refused(world) -> None:
    emu, _, ds = world
    primary = emu.seed_image_set(ds)
    emu.lock(ds, primary.image_set_id, 10)
    with pytest.raises(Exception, match="LOCKED"):
        emu.simulate_import(ds, input_s3_uri=INPUT, output_s3_uri=OUTPUT, image_sets=[primary])
