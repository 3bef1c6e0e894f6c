"""The adapter edge: a lazily created boto3 client per adapter, and the one translation of AWS errors.

Every adapter (HealthImaging, DynamoDB, S3, SQS, EventBridge, Step Functions) makes its calls inside
``AwsAdapter.calling``, which turns any botocore error into one of ``hicopy.errors`` from one table of AWS error codes
(``AWS_ERROR_CODES``): throttling from any API is transient, access denied from any API is terminal, a 5xx is
transient, any other 4xx is terminal; HealthImaging's 404 "... is not the latest." (a stale version) is a version
race, retried like a 409. A call that got no answer is ``ServiceCallInterrupted`` (transient; Submit
reconciles it with the service instead of calling again).

The codes were checked against the error shapes of botocore's service models for the APIs we call
(``botocore/data/<service>/*/service-2.json``) and against botocore's own list of throttling codes
(``botocore/retries/standard.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
)

from hicopy.errors import (
    AccessDenied,
    ImageSetConflict,
    ImageSetNotFound,
    InvalidRequest,
    OrchestratorError,
    ServiceCallInterrupted,
    ServiceInternalError,
    ServiceQuotaExceeded,
    ServiceThrottled,
)

THROTTLING_CODES = (
    "ThrottlingException",  # medical-imaging, dynamodb, events, stepfunctions, most JSON APIs
    "Throttling",  # query-protocol APIs
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",  # dynamodb: the account's request rate
    "ProvisionedThroughputExceededException",  # dynamodb: a table's or partition's throughput
    "RequestThrottled",  # sqs
    "RequestThrottledException",
    "SlowDown",  # s3
    "KmsThrottled",  # sqs: its KMS key
    "KmsThrottlingException",  # stepfunctions: its KMS key
)
ACCESS_DENIED_CODES = (
    "AccessDeniedException",  # medical-imaging, events, most JSON APIs
    "AccessDenied",  # s3, and sqs (query-compatible codes)
    "UnauthorizedOperation",
    "KmsAccessDenied",  # sqs: its KMS key
    "KmsAccessDeniedException",  # stepfunctions: its KMS key
)
SERVER_ERROR_CODES = (
    "InternalServerException",  # medical-imaging
    "InternalServerError",  # dynamodb
    "InternalError",  # s3
    "InternalException",  # events
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",  # s3: the request was not read in time; botocore retries it as transient
    "RequestTimeoutException",
)

#: The fragment of HealthImaging's answer to a stale ``latestVersionId`` (lower-cased when compared).
NOT_LATEST_VERSION = "is not the latest"

# AWS error code -> our error. A key "<service>:<code>" applies to that service only: HealthImaging's conflicts and
# missing resources are about image sets, another API's are not (a missing table is no missing image set). A code
# that is in none of these is terminal (``InvalidRequest``) unless the HTTP status is 5xx (``ServiceInternalError``).
AWS_ERROR_CODES: dict[str, type[OrchestratorError]] = {
    **dict.fromkeys(THROTTLING_CODES, ServiceThrottled),
    **dict.fromkeys(ACCESS_DENIED_CODES, AccessDenied),
    **dict.fromkeys(SERVER_ERROR_CODES, ServiceInternalError),
    "ServiceQuotaExceededException": ServiceQuotaExceeded,  # medical-imaging: e.g. too many concurrent copies
    "medical-imaging:ConflictException": ImageSetConflict,
    "medical-imaging:ResourceNotFoundException": ImageSetNotFound,
    # A stale latestVersionId: production code expects a 404 with this message ("Requested version(s) of
    # ImageSet(s) is not the latest.", tests/data/healthimaging/errors/); it is a version race like a 409, not a
    # missing image set. Keyed "<service>:<code>:<message fragment>", looked up before "<service>:<code>".
    f"medical-imaging:ResourceNotFoundException:{NOT_LATEST_VERSION}": ImageSetConflict,
}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def translate(exc: BotoCoreError | ClientError, service: str, what: str) -> OrchestratorError:
    """Our error for a botocore error of ``service`` (a boto3 service name) during ``what``."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        cls = _by_message(service, code, str(exc.response.get("Error", {}).get("Message") or ""))
        cls = cls or AWS_ERROR_CODES.get(f"{service}:{code}") or AWS_ERROR_CODES.get(code)
        if cls is None:
            cls = ServiceInternalError if status >= 500 else InvalidRequest
        return cls(f"{what}: {code}: {exc.response.get('Error', {}).get('Message', '')}")
    if isinstance(exc, (ConnectTimeoutError, EndpointConnectionError)):
        return ServiceInternalError(f"{what}: {exc}")  # never reached the service
    if isinstance(exc, ParamValidationError):
        return InvalidRequest(f"{what}: {exc}")  # refused by botocore before sending
    return ServiceCallInterrupted(f"{what}: {exc}")  # read timeout, dropped connection: it may have been served


def _by_message(service: str, code: str, message: str) -> type[OrchestratorError] | None:
    """The entry ``<service>:<code>:<fragment>`` whose fragment is in the message (case-insensitive), if any."""
    prefix, lowered = f"{service}:{code}:", message.lower()
    for key, cls in AWS_ERROR_CODES.items():
        if key.startswith(prefix) and key[len(prefix) :].lower() in lowered:
            return cls
    return None


@contextmanager
def aws_errors(service: str, what: str, *, expected: Collection[str] = ()) -> Iterator[None]:
    """Translate every botocore error raised inside. A ``ClientError`` whose code is in ``expected`` (an answer the
    caller handles, e.g. DynamoDB's ConditionalCheckFailedException) propagates as it is."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in expected:
            raise
        raise translate(exc, service, what) from exc
    except BotoCoreError as exc:
        raise translate(exc, service, what) from exc


class AwsAdapter:
    """Holds one boto3 client, created on first use (never at import time) unless one is injected."""

    SERVICE: ClassVar[str] = ""
    CONFIG: ClassVar[Config] = Config(retries={"mode": "standard", "total_max_attempts": 3})

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(self.SERVICE, config=self.CONFIG)
        return self._client

    def calling(self, what: str, *, expected: Collection[str] = ()) -> Any:
        """``with self.calling("GetItem pacing"):`` around every call of this adapter's client (see ``aws_errors``)."""
        return aws_errors(self.SERVICE, what, expected=expected)
