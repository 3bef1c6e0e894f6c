"""The adapters own the state table's key formats: the domain passes IDs, the adapter builds ``pk`` (pinned here with
botocore's Stubber, which also checks each request against the DynamoDB service model)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from hicopy.adapters.state_table import DynamoPaceStore, DynamoSubmissionStore, ImportMarker, PublishedMarker
from hicopy.domain.ports import ImportMark, PaceKey, SubmissionRecord

TABLE = "state"


@pytest.fixture
def ddb() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def get(stub: Stubber, pk: str, item: dict[str, Any] | None = None) -> None:
    response = {"Item": {"pk": {"S": pk}, **item}} if item is not None else {}
    stub.add_response("get_item", response, {"TableName": TABLE, "Key": {"pk": {"S": pk}}, "ConsistentRead": True})


def test_pacing_slots_and_turns_are_two_items_per_action(ddb):
    client, stub = ddb
    store = DynamoPaceStore(TABLE, client=client)
    get(stub, "pace#CopyImageSet", {"tat": {"N": "12.5"}})
    get(stub, "pace#CopyImageSet#call")
    stub.add_response(
        "update_item",
        {},
        {
            "TableName": TABLE,
            "Key": {"pk": {"S": "pace#DeleteImageSet#call"}},
            "UpdateExpression": ANY,
            "ConditionExpression": ANY,
            "ExpressionAttributeValues": ANY,
        },
    )
    assert store.read(PaceKey("CopyImageSet")) == 12.5
    assert store.read(PaceKey("CopyImageSet", turn=True)) is None
    assert store.compare_and_set(PaceKey("DeleteImageSet", turn=True), None, 20.0)


def test_submission_records_are_keyed_by_job_and_chunk(ddb):
    client, stub = ddb
    store = DynamoSubmissionStore(TABLE, client=client)
    stub.add_response(
        "put_item", {}, {"TableName": TABLE, "Item": ANY, "ConditionExpression": "attribute_not_exists(pk)"}
    )
    stub.add_response(
        "delete_item",
        {},
        {
            "TableName": TABLE,
            "Key": {"pk": {"S": "submit#job-1#2"}},
            "ConditionExpression": ANY,
            "ExpressionAttributeNames": ANY,
            "ExpressionAttributeValues": ANY,
        },
    )
    assert store.begin(SubmissionRecord(job_id="job-1", chunk=2, status="SUBMITTING", started_at=1.0)) is None
    store.abandon("job-1", 2)


def test_the_published_and_the_import_markers_build_their_own_keys(ddb):
    client, stub = ddb
    get(stub, "outcome#job-1")
    stub.add_response(
        "put_item",
        {},
        {
            "TableName": TABLE,
            "Item": {
                "pk": {"S": "outcome#job-1"},
                "at": {"N": "100.0"},
                "expiresAt": {"N": str(100 + PublishedMarker.TTL_SECONDS)},
                "detailType": {"S": "Copy Job Succeeded"},
                "receivedAt": {"S": "2026-11-27T10:00:00.000Z"},
            },
        },
    )
    get(stub, f"import#{'a' * 32}#imp-1", {"status": {"S": "COMPLETED"}})
    stub.add_response(
        "put_item",
        {},
        {
            "TableName": TABLE,
            "Item": {
                "pk": {"S": f"import#{'a' * 32}#imp-1"},
                "at": {"N": "100.0"},
                "expiresAt": {"N": str(100 + ImportMarker.TTL_SECONDS)},
                "status": {"S": "COMPLETED"},
                "jobs": {"S": "3"},
                "jobIds": {"S": "j1,j2,j3"},
                "reported": {"S": "false"},
            },
        },
    )
    published = PublishedMarker(TABLE, client=client)
    assert not published.seen("job-1", "2026-11-27T10:00:00.000Z", 100.0)
    published.mark("job-1", "2026-11-27T10:00:00.000Z", 100.0, detail_type="Copy Job Succeeded")
    imports = ImportMarker(TABLE, client=client)
    assert imports.get("a" * 32, "imp-1", 100.0) == ImportMark(status="COMPLETED", jobs=0, reported=True)
    imports.mark("a" * 32, "imp-1", 100.0, ImportMark(status="COMPLETED", jobs=3, job_ids=("j1", "j2", "j3")))


def test_the_outcome_marker_belongs_to_one_run_and_expires(ddb):
    """A job ID's execution name can be used again 90 days after its execution closed; DynamoDB's TTL deletes
    expired items only some time later. Neither an expired marker nor another run's marker is this run's."""
    client, stub = ddb
    marker = PublishedMarker(TABLE, client=client)
    run, other = "2026-11-27T10:00:00.000Z", "2026-08-01T10:00:00.000Z"
    cases = [
        ({"receivedAt": {"S": run}, "expiresAt": {"N": "1000"}}, True),  # this run's
        ({"receivedAt": {"S": other}, "expiresAt": {"N": "1000"}}, False),  # an earlier run of the job ID
        ({"receivedAt": {"S": run}, "expiresAt": {"N": "500"}}, False),  # expired, not deleted yet
        ({"expiresAt": {"N": "1000"}}, True),  # written before runs were told apart, still alive: kept as seen
    ]
    for item, _ in cases:
        get(stub, "outcome#job-1", item)
    assert [marker.seen("job-1", run, 500.0) for _ in cases] == [seen for _, seen in cases]


def test_a_new_image_set_is_claimed_once_under_its_own_key(ddb):
    client, stub = ddb
    store = DynamoSubmissionStore(TABLE, client=client)
    claim = {
        "TableName": TABLE,
        "Item": {
            "pk": {"S": f"claim#{'d' * 32}"},
            "jobId": {"S": "job-1"},
            "chunk": {"N": "0"},
            "expiresAt": {"N": str(100 + DynamoSubmissionStore.TTL_SECONDS)},
        },
        "ConditionExpression": "attribute_not_exists(pk) OR (jobId = :j AND chunk = :c)",
        "ExpressionAttributeValues": {":j": {"S": "job-1"}, ":c": {"N": "0"}},
    }
    stub.add_response("put_item", {}, claim)
    stub.add_client_error("put_item", "ConditionalCheckFailedException", expected_params=claim)
    assert store.claim("d" * 32, "job-1", 0, 100.0)
    assert not store.claim("d" * 32, "job-1", 0, 100.0)  # another (job, chunk) holds it


def test_the_planners_record_of_a_job_is_keyed_by_the_job(ddb):
    from hicopy.adapters.state_table import PlanRecords
    from hicopy.domain.ports import PlannedCopy

    client, stub = ddb
    plans = PlanRecords(TABLE, client=client)
    plan = PlannedCopy("imp-1", "a" * 32, "i" * 32, "b" * 32, "1", None, True, True)
    item = {
        "pk": {"S": "plan#imp-1"},
        "wholeCopy": {"BOOL": True},
        "deleteSource": {"BOOL": True},
        "at": {"N": "100.0"},
        "expiresAt": {"N": str(100 + PlanRecords.TTL_SECONDS)},
        "datastoreId": {"S": "a" * 32},
        "importJobId": {"S": "i" * 32},
        "sourceImageSetId": {"S": "b" * 32},
        "sourceVersionId": {"S": "1"},
    }
    stub.add_response("put_item", {}, {"TableName": TABLE, "Item": item})
    get(stub, "plan#imp-1", {k: v for k, v in item.items() if k != "pk"})
    get(stub, "plan#sent-by-anyone")
    plans.record(plan, 100.0)
    assert plans.get("imp-1") == plan
    assert plans.get("sent-by-anyone") is None
