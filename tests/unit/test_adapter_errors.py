"""One translation of AWS errors at the adapter edge, used by every adapter (``hicopy.adapters.edge``).

The adapters run on real boto3 clients under botocore's Stubber (which checks each request against the service model);
errors that never come back as a response (timeouts, dropped connections) are raised by a small client stand-in.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError
from botocore.stub import Stubber

from hicopy import errors
from hicopy.adapters.aws import EventBridgePublisher, ExecutionStarter, QueueSender, S3Reader
from hicopy.adapters.edge import AWS_ERROR_CODES, THROTTLING_CODES, translate
from hicopy.adapters.healthimaging import HealthImaging
from hicopy.adapters.state_table import DynamoPaceStore, DynamoSubmissionStore, PublishedMarker
from hicopy.domain.ports import PaceKey, SubmissionRecord

DS, IMAGE_SET = "a" * 32, "b" * 32
SM_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:copy"


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def stubbed() -> Iterator[Callable[[str], tuple[Any, Stubber]]]:
    stubs: list[Stubber] = []

    def make(service: str) -> tuple[Any, Stubber]:
        c = client(service)
        stub = Stubber(c)
        stub.activate()
        stubs.append(stub)
        return c, stub

    yield make
    for stub in stubs:
        stub.assert_no_pending_responses()
        stub.deactivate()


# One call of each adapter, and the client method it makes first.
CALLS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "HealthImaging GetImageSet": (
        "medical-imaging",
        "get_image_set",
        lambda c: HealthImaging(c).get_image_set(DS, IMAGE_SET),
    ),
    "DynamoDB pacing": ("dynamodb", "get_item", lambda c: DynamoPaceStore("t", client=c).read(PaceKey("CopyImageSet"))),
    "DynamoDB marker": (
        "dynamodb",
        "put_item",
        lambda c: PublishedMarker("t", client=c).mark("j", "2026-11-27T10:00:00.000Z", 1.0, detail_type="x"),
    ),
    "S3 GetObject": ("s3", "get_object", lambda c: S3Reader(c).read("s3://bucket/key")),
    "SQS SendMessage": ("sqs", "send_message", lambda c: QueueSender("https://sqs/q", client=c).send("{}")),
    "EventBridge PutEvents": (
        "events",
        "put_events",
        lambda c: EventBridgePublisher("bus", "src", client=c).publish("t", {}),
    ),
    "Step Functions StartExecution": (
        "stepfunctions",
        "start_execution",
        lambda c: ExecutionStarter(SM_ARN, client=c).start("j", {}),
    ),
}
ACCESS_DENIED = {
    "medical-imaging": "AccessDeniedException",
    "dynamodb": "AccessDeniedException",
    "s3": "AccessDenied",
    "sqs": "AccessDenied",
    "events": "AccessDeniedException",
    "stepfunctions": "AccessDeniedException",
}
THROTTLED = {
    "medical-imaging": "ThrottlingException",
    "dynamodb": "ProvisionedThroughputExceededException",
    "s3": "SlowDown",
    "sqs": "RequestThrottled",
    "events": "ThrottlingException",
    "stepfunctions": "ThrottlingException",
}


@pytest.mark.parametrize("adapter", list(CALLS))
def test_access_denied_from_any_adapter_is_terminal(stubbed, adapter):
    service, method, call = CALLS[adapter]
    c, stub = stubbed(service)
    stub.add_client_error(method, ACCESS_DENIED[service], "no permission", 403)
    with pytest.raises(errors.AccessDenied) as caught:
        call(c)
    assert caught.value.handling is errors.Handling.TERMINAL and "no permission" in caught.value.message


@pytest.mark.parametrize("adapter", list(CALLS))
def test_throttling_from_any_adapter_is_transient(stubbed, adapter):
    service, method, call = CALLS[adapter]
    c, stub = stubbed(service)
    stub.add_client_error(method, THROTTLED[service], "slow down", 503 if service == "s3" else 400)
    with pytest.raises(errors.ServiceThrottled):
        call(c)


@pytest.mark.parametrize("adapter", list(CALLS))
def test_a_5xx_is_transient_and_an_unknown_4xx_terminal(stubbed, adapter):
    service, method, call = CALLS[adapter]
    c, stub = stubbed(service)
    stub.add_client_error(method, "SomethingNew", "boom", 503)
    stub.add_client_error(method, "SomethingNew", "bad", 400)
    with pytest.raises(errors.ServiceInternalError):
        call(c)
    with pytest.raises(errors.InvalidRequest):
        call(c)


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("ThrottlingException", 429, errors.ServiceThrottled),
        ("InternalServerException", 500, errors.ServiceInternalError),
        ("ServiceQuotaExceededException", 402, errors.ServiceQuotaExceeded),
        ("ConflictException", 409, errors.ImageSetConflict),
        ("ValidationException", 400, errors.InvalidRequest),
        ("ResourceNotFoundException", 404, errors.ImageSetNotFound),
        ("AccessDeniedException", 403, errors.AccessDenied),
        ("SomethingNew", 503, errors.ServiceInternalError),
        ("SomethingNew", 400, errors.InvalidRequest),
    ],
)
def test_healthimaging_errors_map_to_one_taxonomy(code, status, cls):
    exc = ClientError({"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "X")
    err = translate(exc, "medical-imaging", "GetImageSet")
    assert type(err) is cls and err.message == f"GetImageSet: {code}: msg"


STALE_VERSION_MESSAGE = "Requested version(s) of ImageSet(s) is not the latest."  # tests/data/healthimaging/errors


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ResourceNotFoundException", 404, STALE_VERSION_MESSAGE),  # what production code expects (grand-challenge)
        ("ResourceNotFoundException", 404, STALE_VERSION_MESSAGE.upper().rstrip(".")),  # worded a little otherwise
        ("ConflictException", 409, STALE_VERSION_MESSAGE),  # the answer the design first inferred
    ],
)
def test_a_stale_version_is_a_version_race_whichever_way_the_service_answers(code, status, message):
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    exc = ClientError(response, "X")
    err = translate(exc, "medical-imaging", "CopyImageSet")
    assert type(err) is errors.ImageSetConflict and err.handling is errors.Handling.STATE


def test_other_missing_resources_stay_not_found_and_the_message_rule_is_healthimaging_s():
    for message in ("Image set not found", "version 7 of image set b... not found", ""):
        exc = ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": message}, "ResponseMetadata": {}}, "X"
        )
        assert type(translate(exc, "medical-imaging", "GetImageSet")) is errors.ImageSetNotFound
    exc = ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": STALE_VERSION_MESSAGE}, "ResponseMetadata": {}}, "X"
    )
    assert type(translate(exc, "dynamodb", "GetItem")) is errors.InvalidRequest


def test_lambda_client_execution_timeout_is_retried_with_the_other_lambda_service_errors():
    # AWS's recommended retrier (Step Functions developer guide, bp-lambda-serviceexception)
    recommended = {
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
    }
    assert recommended <= set(errors.LAMBDA_SERVICE_ERRORS)


def test_conflicts_and_missing_resources_are_about_image_sets_only_from_healthimaging():
    for code in ("ConflictException", "ResourceNotFoundException"):
        exc = ClientError({"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "X")
        assert type(translate(exc, "dynamodb", "GetItem")) is errors.InvalidRequest


def test_calls_that_got_no_answer_are_interrupted_and_calls_that_never_left_are_not():
    read_timeout = ReadTimeoutError(endpoint_url="https://example")
    assert type(translate(read_timeout, "dynamodb", "GetItem")) is errors.ServiceCallInterrupted
    unreachable = EndpointConnectionError(endpoint_url="https://example")
    assert type(translate(unreachable, "medical-imaging", "CopyImageSet")) is errors.ServiceInternalError
    invalid = ParamValidationError(report="missing datastoreId")
    assert type(translate(invalid, "medical-imaging", "CopyImageSet")) is errors.InvalidRequest
    assert errors.ServiceCallInterrupted.handling is errors.Handling.TRANSIENT


# --- answers an adapter expects stay handled where the code relies on them --------------------------------------
def test_a_failed_condition_is_an_answer_not_an_error(stubbed):
    c, stub = stubbed("dynamodb")
    stub.add_client_error("update_item", "ConditionalCheckFailedException", "", 400)
    stub.add_client_error("put_item", "ConditionalCheckFailedException", "", 400)
    existing = {"pk": {"S": "submit#j#0"}, "status": {"S": "SUBMITTED"}, "startedAt": {"N": "1"}}
    stub.add_response("get_item", {"Item": existing})
    stub.add_client_error("delete_item", "ConditionalCheckFailedException", "", 400)
    assert DynamoPaceStore("t", client=c).compare_and_set(PaceKey("CopyImageSet"), None, 5.0) is False
    store = DynamoSubmissionStore("t", client=c)
    found = store.begin(SubmissionRecord(job_id="j", chunk=0, status="SUBMITTING", started_at=1.0))
    assert found is not None and found.status == "SUBMITTED"
    store.abandon("j", 0)  # the record is SUBMITTED: left as it is, silently


def test_a_duplicate_execution_and_a_missing_object_are_answers(stubbed):
    sfn, sfn_stub = stubbed("stepfunctions")
    sfn_stub.add_client_error("start_execution", "ExecutionAlreadyExists", "", 400)
    s3, s3_stub = stubbed("s3")
    s3_stub.add_client_error("get_object", "NoSuchKey", "", 404)
    assert ExecutionStarter(SM_ARN, client=sfn).start("j", {}) == (
        SM_ARN.replace(":stateMachine:", ":execution:") + ":j",
        False,
    )
    assert S3Reader(s3).read("s3://bucket/key") is None


def test_event_entries_that_failed_are_a_publish_failure(stubbed):
    c, stub = stubbed("events")
    stub.add_response(
        "put_events", {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}
    )
    with pytest.raises(errors.EventPublishFailed, match="InternalFailure: x"):
        EventBridgePublisher("bus", "src", client=c).publish("t", {})


# --- paths that used to escape untranslated --------------------------------------------------------------------
def test_reading_an_existing_submission_record_is_translated(stubbed):
    c, stub = stubbed("dynamodb")
    stub.add_client_error("put_item", "ConditionalCheckFailedException", "", 400)
    stub.add_client_error("get_item", "ProvisionedThroughputExceededException", "", 400)
    with pytest.raises(errors.ServiceThrottled):
        DynamoSubmissionStore("t", client=c).begin(
            SubmissionRecord(job_id="j", chunk=0, status="SUBMITTING", started_at=1.0)
        )


class Unanswered:
    """A client whose every call gets no answer (the connection dropped after the request went out)."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(**_: Any) -> Any:
            raise ReadTimeoutError(endpoint_url="https://example")

        return call


def test_a_lost_answer_when_abandoning_a_submission_is_translated():
    with pytest.raises(errors.ServiceCallInterrupted):
        DynamoSubmissionStore("t", client=Unanswered()).abandon("j", 0)


def test_a_metadata_blob_that_stops_streaming_is_translated(stubbed):
    class Stalls(io.BytesIO):
        def read(self, *_: Any) -> bytes:
            raise ReadTimeoutError(endpoint_url="https://example")

    c, stub = stubbed("medical-imaging")
    stub.add_response("get_image_set_metadata", {"imageSetMetadataBlob": Stalls(), "contentType": "application/json"})
    with pytest.raises(errors.ServiceCallInterrupted):
        HealthImaging(c).get_metadata(DS, IMAGE_SET)


# --- the table against botocore's service models ---------------------------------------------------------------
SERVICES = ("medical-imaging", "dynamodb", "s3", "sqs", "events", "stepfunctions")


def error_codes(service: str) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    return {shape.error_code or shape.name for shape in model.error_shapes}


def test_every_throttling_and_access_denied_error_of_our_apis_is_in_the_table():
    for service in SERVICES:
        for code in error_codes(service):
            if "Throttl" in code or code in ("RequestLimitExceeded", "ProvisionedThroughputExceededException"):
                assert AWS_ERROR_CODES.get(code) is errors.ServiceThrottled, (service, code)
            if "AccessDenied" in code:
                assert AWS_ERROR_CODES.get(code) is errors.AccessDenied, (service, code)


def test_service_specific_codes_are_that_service_s_errors():
    codes = {key.split(":")[1] for key in AWS_ERROR_CODES if ":" in key}
    assert codes and codes <= error_codes("medical-imaging")
    assert set(error_codes("medical-imaging")) - {
        "BadRequestException",
        "NotAcceptableException",
        "ValidationException",
    } <= {key.split(":")[-2 if key.count(":") == 2 else -1] for key in AWS_ERROR_CODES}
    assert len(THROTTLING_CODES) == len(set(THROTTLING_CODES))
