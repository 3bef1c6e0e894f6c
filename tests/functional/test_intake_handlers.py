"""The queue consumer and the import planner against moto and the emulator."""

from __future__ import annotations

import json
from typing import Any

import boto3

from hicopy.contract import IMPORT_FAILURES, IMPORT_PLANNED, REJECTED
from hicopy.handlers import consumer, planner
from offline.healthimaging.seeding import SeedSpec
from tests.functional.conftest import Stack
from tests.support.contracts import assert_valid_event
from tests.support.handlers import CTX, clear_handler_caches, sqs_record


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [sqs_record(body, f"0000000{n}-aaaa-bbbb-cccc-dddddddddddd") for n, body in enumerate(bodies)]}


def test_batch_with_good_bad_and_duplicate_jobs(stack: Stack):
    job = {"jobId": "good-1", "datastoreId": stack.datastore_id, "source": {"imageSetId": "a" * 32}}
    event_job = {
        "id": "evt-1",
        "detail-type": "Copy Requested",
        "source": "pacs",
        "detail": {"datastoreId": stack.datastore_id, "source": {"imageSetId": "b" * 32}},
    }
    result = consumer.handler(sqs_event(json.dumps(job), "{broken", json.dumps(job), json.dumps(event_job)), CTX)
    assert result == {"batchItemFailures": []}  # rejected and duplicate messages are settled, never retried
    started = stack.executions()
    assert sorted(e["name"] for e in started) == ["evt-1", "good-1"]
    state = json.loads(next(e for e in started if e["name"] == "evt-1")["input"])
    assert state["trigger"] == {"type": "event", "eventId": "evt-1", "source": "pacs"}
    (rejected,) = stack.events()
    assert rejected["detail-type"] == REJECTED and "not valid JSON" in rejected["detail"]["reason"]["message"]
    assert_valid_event(REJECTED, rejected["detail"])
    (dead,) = stack.dlq()
    assert dead["Body"] == "{broken" and dead["MessageAttributes"]["rejectionCode"]["StringValue"] == "JobRejected"


def test_transient_start_failure_is_a_partial_batch_failure(stack: Stack, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", stack.state_machine_arn.replace(":copy", ":missing"))
    clear_handler_caches()
    good = {"jobId": "j", "datastoreId": stack.datastore_id, "source": {"imageSetId": "a" * 32}}
    result = consumer.handler(sqs_event(json.dumps(good), "[]"), CTX)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["00000000-aaaa-bbbb-cccc-dddddddddddd"]
    assert [e["detail-type"] for e in stack.events()] == [REJECTED]


def test_import_planner_consolidates_non_primary_image_sets(stack: Stack):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="imports")
    primary = stack.emulator.seed_image_set(stack.datastore_id, patient_id="P-1")
    job_id = stack.emulator.simulate_import(
        stack.datastore_id,
        input_s3_uri="s3://imports/in/",
        output_s3_uri="s3://imports/out/",
        image_sets=[SeedSpec(patient_id="OTHER", study_uid=primary.study_uid, series_uids=tuple(primary.series_uids))],
        failures=[("in/broken.dcm", "ValidationException", "DICOM attribute TransferSyntaxUID does not exist")],
    )
    stack.clock.t += 60
    stack.emulator.tick()
    imported = [e for e in stack.emulator.events if e.detail_type == "Import Job Completed"]
    assert imported, "the emulator emitted Import Job Completed"
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "Import Job Completed",
        "source": "aws.medical-imaging",
        "detail": imported[-1].detail,
    }
    result = planner.handler(event, CTX)
    assert result["importJobId"] == job_id and len(result["planned"]) == 1 and result["failedFiles"] == 1
    msgs = boto3.client("sqs").receive_message(QueueUrl=stack.job_queue_url, MessageAttributeNames=["All"])["Messages"]
    job = json.loads(msgs[0]["Body"])
    assert job["destination"] == {"imageSetId": primary.image_set_id}
    assert json.loads(msgs[0]["MessageAttributes"]["hicopyTrigger"]["StringValue"])["importJobId"] == job_id
    published = stack.events()
    assert [e["detail-type"] for e in published] == [IMPORT_FAILURES, IMPORT_PLANNED]
    for e in published:
        assert_valid_event(e["detail-type"], e["detail"])
    assert planner.handler(event, CTX)["duplicate"] is True  # a redelivered event plans nothing twice
