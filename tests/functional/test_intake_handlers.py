"""The queue consumer and the import planner against moto and the emulator."""

from __future__ import annotations

import json
from typing import Any

import boto3

from hicopy.contract import IMPORT_FAILURES, IMPORT_PLANNED, REJECTED
from hicopy.handlers import consumer, planner
from offline.healthimaging.seeding import SeedSpec
from tests.contracts import assert_valid_event
from tests.functional.conftest import CTX, Stack


def sqs_event(*bodies: str, attributes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    records = []
    for n, body in enumerate(bodies):
        attrs = (attributes or [{}] * len(bodies))[n]
        records.append(
            {
                "messageId": f"0000000{n}-aaaa-bbbb-cccc-dddddddddddd",
                "receiptHandle": f"rh{n}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1",
                    "SenderId": "x",
                    "ApproximateFirstReceiveTimestamp": "1",
                },
                "messageAttributes": {k: {"stringValue": v, "dataType": "String"} for k, v in attrs.items()},
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def executions(stack: Stack) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return [
        sfn.describe_execution(executionArn=e["executionArn"])
        for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    ]


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
    started = executions(stack)
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
    from tests.functional.conftest import _clear_handler_caches

    _clear_handler_caches()
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
