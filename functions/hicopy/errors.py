"""One error taxonomy for the whole orchestrator, declared once per class.

Every exception a handler raises is one of these classes. The class name is the Step Functions error name
(a Python Lambda's ``errorType``), so the state machine's ``Retry``/``Catch`` clauses match on them. Each class
declares its ``handling`` once; the lists ``TRANSIENT_ERRORS``, ``STATE_ERRORS``, ``REPACE_ERRORS`` and
``TERMINAL_ERRORS`` are derived from those declarations and imported by ``infra/`` to
build the clauses, which keeps "retried how, or terminal" decided here and only here. ``code``, the reason code a
failure event publishes, is the class name unless a class says otherwise.

AWS error codes are translated into these classes at the adapter edge, in one place (``hicopy.adapters.edge``).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar


class Handling(Enum):
    """How the state machine handles an error (design §2)."""

    TRANSIENT = "transient"  # Retry with backoff and full jitter, bounded
    STATE = "state"  # re-read the state (locks, versions), Retry with backoff, bounded
    REPACE = "repace"  # a paced call missed its turn: back to Pace for a new slot (a bounded number of times)
    TERMINAL = "terminal"  # a failure event with the code and the message


class OrchestratorError(Exception):
    """Base class. ``handling`` says how the state machine treats the error; ``code`` is the stable reason code
    published in failure events (the class name unless the class sets another)."""

    handling: ClassVar[Handling]
    code: ClassVar[str] = "InternalError"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in vars(cls):
            cls.code = cls.__name__
        if "handling" not in vars(cls):
            raise TypeError(f"{cls.__name__} must declare its handling")

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def error_name(cls) -> str:
        """The Step Functions error name for this class."""
        return cls.__name__


# --- retried, transient ---------------------------------------------------------------------------------------
class ServiceThrottled(OrchestratorError):
    """An AWS API answered with a throttling error (HealthImaging's ThrottlingException, DynamoDB's
    ProvisionedThroughputExceededException, ...)."""

    handling = Handling.TRANSIENT


class ServiceInternalError(OrchestratorError):
    """An AWS API answered InternalServerException (or any 5xx), or could not be reached at all."""

    handling = Handling.TRANSIENT


class ServiceCallInterrupted(ServiceInternalError):
    """The call may have reached the service but no answer came back (connection dropped, read timeout)."""

    handling = Handling.TRANSIENT


class ServiceQuotaExceeded(OrchestratorError):
    """ServiceQuotaExceededException, e.g. too many concurrent copies in the data store."""

    handling = Handling.TRANSIENT


class PacingContention(OrchestratorError):
    """Too many executions raced for the same pacing slot; try again shortly."""

    handling = Handling.TRANSIENT


class SlotMissed(OrchestratorError):
    """A paced call could not be made close enough to its slot: the calls of other executions ran late, and waiting
    for the account's next turn would take longer than a task should sleep. The job takes a new slot (Pace)."""

    handling = Handling.REPACE


class ManifestNotReady(OrchestratorError):
    """An import's output manifest is not in S3 yet (it can lag the ``Import Job Completed`` event)."""

    handling = Handling.TRANSIENT


class EventPublishFailed(OrchestratorError):
    """PutEvents returned FailedEntryCount > 0."""

    handling = Handling.TRANSIENT


class DeliveryUnconfirmed(OrchestratorError):
    """An earlier put of this event lost its answer (it may have been accepted) and its delivery receipt has not come
    yet: asked again later, within the receipt window, before the event is put a second time
    (``hicopy.domain.delivery``)."""

    handling = Handling.TRANSIENT


# --- retried, state -------------------------------------------------------------------------------------------
class ImageSetConflict(OrchestratorError):
    """ConflictException: an image set is locked by another write, or a version moved under us (also a
    ResourceNotFoundException "... is not the latest.", HealthImaging's answer to a stale ``latestVersionId``)."""

    handling = Handling.STATE


class CopyStillInProgress(OrchestratorError):
    """The destination version is still LOCKED/COPYING and AwaitCopy's budget of status checks is spent (while it
    is not, AwaitCopy returns ``awaiting`` and the state machine's callback wait loops, ``hicopy.domain.awaiting``).

    Its ``code`` is not the class name: the code names the outcome (the wait budget ran out; the copy may still
    complete), not the state of the copy.
    """

    handling = Handling.TERMINAL
    code = "CopyWaitBudgetExhausted"


# --- terminal -------------------------------------------------------------------------------------------------
class InvalidRequest(OrchestratorError):
    """ValidationException (or another 4xx) from an AWS API, or a task run with a state it cannot work on."""

    handling = Handling.TERMINAL


class ImageSetNotFound(OrchestratorError):
    """ResourceNotFoundException, or the image set does not belong to the data store."""

    handling = Handling.TERMINAL


class AccessDenied(OrchestratorError):
    """An AWS API refused the call (AccessDeniedException, AccessDenied, ...): the role lacks a permission."""

    handling = Handling.TERMINAL


class CopyFailed(OrchestratorError):
    """The copy was accepted but the destination version ended COPY_FAILED. ``message`` is the service's."""

    handling = Handling.TERMINAL


class UnexpectedImageSetStatus(OrchestratorError):
    """An image set is in a status the job cannot go on from (``hicopy.domain.statuses``); the message names it."""

    handling = Handling.TERMINAL


class StaleVersion(OrchestratorError):
    """The job pinned a versionId that is not the image set's latest version."""

    handling = Handling.TERMINAL


class SelectionInvalid(OrchestratorError):
    """The job's instances/series selection does not match the source metadata, or cannot be chunked."""

    handling = Handling.TERMINAL


class SlotBeyondDeadline(OrchestratorError):
    """The account's next paced slot comes later than the execution can live to use it (its start plus the execution
    timeout, less what the rest of the job needs): the job fails now instead of waiting into TIMED_OUT."""

    handling = Handling.TERMINAL


class SubmitOutcomeUnknown(OrchestratorError):
    """A previous Submit attempt may have started the copy but did not record its outcome."""

    handling = Handling.TERMINAL


class ImportOutputInvalid(OrchestratorError):
    """An import's manifest or ndjson output is not in the documented shape."""

    handling = Handling.TERMINAL


class JobRejected(OrchestratorError):
    """The job message itself is invalid (not JSON, wrong fields, bad IDs). Never retried; goes to the DLQ."""

    handling = Handling.TERMINAL


class JobIdReused(JobRejected):
    """The job ID already names an execution of a *different* job (the same job again is a silent duplicate). The
    message is rejected like any invalid job, naming the existing execution; the sender must pick another job ID."""

    handling = Handling.TERMINAL

    def __init__(self, message: str, *, execution_arn: str) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn


# --- an execution that ended without its terminal event (the safety net's reason codes) ---------------------------
class ExecutionTimedOut(OrchestratorError):
    """The execution ran past the state machine's timeout (TIMED_OUT runs no Catch)."""

    handling = Handling.TERMINAL


class ExecutionAborted(OrchestratorError):
    """The execution was stopped (StopExecution) before it published its terminal event."""

    handling = Handling.TERMINAL


class ExecutionFailed(OrchestratorError):
    """The execution failed outside any task's Catch (e.g. ``States.DataLimitExceeded``)."""

    handling = Handling.TERMINAL


class BacklogExpired(JobRejected):
    """The job waited longer than the job queue's retention in the backlog (``hicopy.domain.admission``): rejected
    with a clear reason (event + DLQ) instead of being dropped by SQS without a word."""

    handling = Handling.TERMINAL


class ConfigurationError(OrchestratorError):
    """The function's environment is invalid (raised at cold start)."""

    handling = Handling.TERMINAL


# --- derived from the declarations above ----------------------------------------------------------------------
def _error_classes(base: type[OrchestratorError] = OrchestratorError) -> list[type[OrchestratorError]]:
    """Every subclass of ``base``, depth first, in the order they are defined above."""
    found: list[type[OrchestratorError]] = []
    for cls in base.__subclasses__():
        found += [cls, *_error_classes(cls)]
    return found


ALL_ERROR_CLASSES: dict[str, type[OrchestratorError]] = {cls.error_name(): cls for cls in _error_classes()}


def _names(handling: Handling) -> list[str]:
    return [name for name, cls in ALL_ERROR_CLASSES.items() if cls.handling is handling]


# Step Functions error names, grouped by handling.
TRANSIENT_ERRORS: list[str] = _names(Handling.TRANSIENT)
STATE_ERRORS: list[str] = _names(Handling.STATE)
REPACE_ERRORS: list[str] = _names(Handling.REPACE)
TERMINAL_ERRORS: list[str] = _names(Handling.TERMINAL)

# Errors the Lambda service itself raises; Step Functions names them like this.
LAMBDA_SERVICE_ERRORS: list[str] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",  # in AWS's recommended Lambda retrier (Step Functions developer guide)
]

# A Lambda that died without an answer (function timeout, out of memory): Step Functions names it like this
# (``Lambda.Unknown``; ``Sandbox.Timedout`` for a timeout). Retried only on tasks whose retry is safe: Prepare and
# AwaitCopy read, Pace reserves another slot, and Submit reconciles an interrupted attempt with the service instead
# of calling again. Never on Publish (its marker is written after PutEvents).
LAMBDA_CRASH_ERRORS: list[str] = ["Lambda.Unknown", "Sandbox.Timedout"]


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
