"""One error taxonomy for the whole orchestrator.

Every exception a handler raises is one of these classes. The class name is the Step Functions error name
(a Python Lambda's ``errorType``), so the state machine's ``Retry``/``Catch`` clauses match on them: the lists
``TRANSIENT_ERRORS``, ``STATE_ERRORS`` and ``TERMINAL_ERRORS`` below are imported by ``infra/`` to build those
clauses, which keeps "retryable or terminal" decided here and only here.

HealthImaging service errors are mapped by ``from_service_error`` (see ``SERVICE_ERROR_MAP``).
"""

from __future__ import annotations

from typing import ClassVar


class OrchestratorError(Exception):
    """Base class. ``code`` is the stable reason code published in failure events."""

    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def error_name(cls) -> str:
        """The Step Functions error name for this class."""
        return cls.__name__


class RetryableError(OrchestratorError):
    retryable = True


class TerminalError(OrchestratorError):
    retryable = False


# --- retryable, transient -------------------------------------------------------------------------------------
class ServiceThrottled(RetryableError):
    """HealthImaging (or another AWS API) answered ThrottlingException."""

    code = "Throttled"


class ServiceInternalError(RetryableError):
    """HealthImaging answered InternalServerException (or any 5xx)."""

    code = "ServiceInternalError"


class ServiceCallInterrupted(ServiceInternalError):
    """The call may have reached the service but no answer came back (connection dropped, read timeout)."""

    code = "ServiceCallInterrupted"


class ServiceQuotaExceeded(RetryableError):
    """ServiceQuotaExceededException, e.g. too many concurrent copies in the data store."""

    code = "ServiceQuotaExceeded"


class PacingContention(RetryableError):
    """Too many executions raced for the same pacing slot; try again shortly."""

    code = "PacingContention"


class SlotMissed(RetryableError):
    """A paced call could not be made close enough to its slot: the calls of other executions ran late, and waiting
    for the account's next turn would take longer than a task should sleep. The job takes a new slot (Pace)."""

    code = "SlotMissed"


class ManifestNotReady(RetryableError):
    """An import's output manifest is not in S3 yet (it can lag the ``Import Job Completed`` event)."""

    code = "ManifestNotReady"


class EventPublishFailed(RetryableError):
    """PutEvents returned FailedEntryCount > 0."""

    code = "EventPublishFailed"


# --- retryable, state -----------------------------------------------------------------------------------------
class ImageSetConflict(RetryableError):
    """ConflictException: an image set is locked by another write, or a version moved under us."""

    code = "Conflict"


class CopyStillInProgress(RetryableError):
    """The destination version is still LOCKED/COPYING. The AwaitCopy task's Retry turns this into backoff."""

    code = "CopyWaitBudgetExhausted"  # the code published if retries run out while still copying


# --- terminal -------------------------------------------------------------------------------------------------
class InvalidRequest(TerminalError):
    """ValidationException from the service."""

    code = "ValidationError"


class ImageSetNotFound(TerminalError):
    """ResourceNotFoundException, or the image set does not belong to the data store."""

    code = "NotFound"


class AccessDenied(TerminalError):
    """AccessDeniedException."""

    code = "AccessDenied"


class CopyFailed(TerminalError):
    """The copy was accepted but the destination version ended COPY_FAILED. ``message`` is the service's."""

    code = "CopyFailed"


class StaleVersion(TerminalError):
    """The job pinned a versionId that is not the image set's latest version."""

    code = "StaleVersion"


class SelectionInvalid(TerminalError):
    """The job's instances/series selection does not match the source metadata, or cannot be chunked."""

    code = "InvalidSelection"


class SubmitOutcomeUnknown(TerminalError):
    """A previous Submit attempt may have started the copy but did not record its outcome."""

    code = "SubmitOutcomeUnknown"


class ImportOutputInvalid(TerminalError):
    """An import's manifest or ndjson output is not in the documented shape."""

    code = "ImportOutputInvalid"


class JobRejected(TerminalError):
    """The job message itself is invalid (not JSON, wrong fields, bad IDs). Never retried; goes to the DLQ."""

    code = "JobRejected"


class ConfigurationError(TerminalError):
    """The function's environment is invalid (raised at cold start)."""

    code = "ConfigurationError"


# Service error code (botocore ``Error.Code``) -> our class.
SERVICE_ERROR_MAP: dict[str, type[OrchestratorError]] = {
    "ThrottlingException": ServiceThrottled,
    "TooManyRequestsException": ServiceThrottled,
    "RequestLimitExceeded": ServiceThrottled,
    "InternalServerException": ServiceInternalError,
    "ServiceUnavailable": ServiceInternalError,
    "ServiceQuotaExceededException": ServiceQuotaExceeded,
    "ConflictException": ImageSetConflict,
    "ValidationException": InvalidRequest,
    "ResourceNotFoundException": ImageSetNotFound,
    "AccessDeniedException": AccessDenied,
}


def from_service_error(code: str, message: str, *, http_status: int | None = None) -> OrchestratorError:
    """Map a service error code to our taxonomy. Unknown codes: 5xx -> retryable internal error, else terminal."""
    cls = SERVICE_ERROR_MAP.get(code)
    if cls is None:
        cls = ServiceInternalError if (http_status or 0) >= 500 else InvalidRequest
    return cls(f"{code}: {message}")


def _names(*classes: type[OrchestratorError]) -> list[str]:
    return [c.error_name() for c in classes]


# Step Functions error names, grouped by handling (design §2).
TRANSIENT_ERRORS: list[str] = _names(
    ServiceThrottled,
    ServiceInternalError,
    ServiceCallInterrupted,
    ServiceQuotaExceeded,
    PacingContention,
    ManifestNotReady,
    EventPublishFailed,
)
STATE_ERRORS: list[str] = _names(ImageSetConflict)
# A paced task that missed its turn goes back to Pace for a new slot (a bounded number of times).
REPACE_ERRORS: list[str] = _names(SlotMissed)
STILL_COPYING_ERRORS: list[str] = _names(CopyStillInProgress)
TERMINAL_ERRORS: list[str] = _names(
    InvalidRequest,
    ImageSetNotFound,
    AccessDenied,
    CopyFailed,
    StaleVersion,
    SelectionInvalid,
    SubmitOutcomeUnknown,
    ImportOutputInvalid,
    JobRejected,
    ConfigurationError,
)
# Errors the Lambda service itself raises; Step Functions names them like this.
LAMBDA_SERVICE_ERRORS: list[str] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]

# A Lambda that died without an answer (function timeout, out of memory): Step Functions names it like this
# (``Lambda.Unknown``; ``Sandbox.Timedout`` for a timeout). Retried only on tasks whose retry is safe: Prepare and
# AwaitCopy read, Pace reserves another slot, and Submit reconciles an interrupted attempt with the service instead
# of calling again. Never on Publish (its marker is written after PutEvents).
LAMBDA_CRASH_ERRORS: list[str] = ["Lambda.Unknown", "Sandbox.Timedout"]

ALL_ERROR_CLASSES: dict[str, type[OrchestratorError]] = {
    cls.error_name(): cls
    for cls in (
        ServiceThrottled,
        ServiceInternalError,
        ServiceCallInterrupted,
        ServiceQuotaExceeded,
        PacingContention,
        SlotMissed,
        ManifestNotReady,
        EventPublishFailed,
        ImageSetConflict,
        CopyStillInProgress,
        InvalidRequest,
        ImageSetNotFound,
        AccessDenied,
        CopyFailed,
        StaleVersion,
        SelectionInvalid,
        SubmitOutcomeUnknown,
        ImportOutputInvalid,
        JobRejected,
        ConfigurationError,
    )
}


def reason_code_for(error_name: str) -> str:
    """The failure event's ``reason.code`` for a Step Functions error name (ours or a States./Lambda. one)."""
    cls = ALL_ERROR_CLASSES.get(error_name)
    if cls is not None:
        return cls.code
    if error_name in ("States.Timeout", "Sandbox.Timedout"):
        return "Timeout"
    if error_name.startswith("Lambda."):
        return "LambdaError"
    return "InternalError"
