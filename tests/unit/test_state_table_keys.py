"""The adapters own the state table's key formats: the domain passes IDs, the adapter builds ``pk`` (pinned here with
botocore's Stubber, which also checks each request against the DynamoDB service model)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from hicopy.adapters.aws import DynamoPaceStore, DynamoSubmissionStore, ImportMarker, PublishedMarker
from hicopy.domain.ports import PaceKey, SubmissionRecord

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
            },
        },
    )
    published = PublishedMarker(TABLE, client=client)
    assert not published.seen("job-1")
    published.mark("job-1", 100.0, detail_type="Copy Job Succeeded")
    imports = ImportMarker(TABLE, client=client)
    assert imports.seen("a" * 32, "imp-1")
    imports.mark("a" * 32, "imp-1", 100.0, status="COMPLETED", jobs=3)
