"""Accepting jobs from the job queue: every trigger (raw SQS job, ``Copy Requested`` event, import planner) arrives
here, so validation, rejection and idempotency exist once.

A message is one of:
- a raw job (design §3.1) — trigger ``sqs``, default job ID = the SQS message ID;
- a whole EventBridge event (the ``Copy Requested`` rule delivers the event itself) whose ``detail`` is the job —
  trigger ``event``, default job ID = the event ID;
- a job from the import planner, with the message attribute ``hicopyTrigger`` (JSON) — trigger ``import``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal, TypeGuard

from hicopy.clock import Clock, iso
from hicopy.contract import COPY_REQUESTED, DATASTORE_ID_PATTERN, REJECTED
from hicopy.domain.delivery import RECEIPT_WINDOW_SECONDS, put_tracked, receipt_of, rejection_identity
from hicopy.domain.events import Reason, RejectedDetail, TriggerOut, dump, excerpt
from hicopy.domain.job import CORRELATION_ID_PATTERN, JOB_ID_PATTERN, CopyJob, Trigger, parse_job, safe_name
from hicopy.domain.ports import (
    DeliveryReceiptPort,
    EventPublisherPort,
    ExecutionsPort,
    MessageSenderPort,
    RejectionMarkerPort,
)
from hicopy.domain.state import WorkflowState
from hicopy.errors import JobIdReused, JobRejected

TRIGGER_ATTRIBUTE = "hicopyTrigger"
# A job's body, bounded so that the execution input built from it (job + trigger + timestamps) stays below
# Step Functions' 256 KiB input limit.
MAX_BODY_BYTES = 200 * 1024
MAX_STATE_BYTES = 250 * 1024
MAX_REASON_CHARS = 1024
# Arrays and objects nested deeper than this are refused before parsing: a valid job nests 3 levels (4 in an event),
# and json.loads recurses once per level (RecursionError near 1,000 levels, which a 3 KB body reaches).
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Accepted:
    job: CopyJob
    trigger: Trigger
    state: WorkflowState


def accept(body: str, *, message_id: str, attributes: dict[str, str], clock: Clock) -> Accepted:
    """Parse and validate one queue message; ``JobRejected`` with a precise reason if it is not a valid job."""
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise JobRejected(f"the message is {size} bytes; a job is at most {MAX_BODY_BYTES} bytes")
    check_depth(body, "the message body")
    try:
        data = loads_strict(body)
    except ValueError as exc:
        raise JobRejected(f"the message body is not valid JSON: {exc}") from exc
    trigger_data: dict[str, Any]
    if _is_event(data):
        if data["detail-type"] != COPY_REQUESTED:
            raise JobRejected(f"event detail-type {safe_name(data['detail-type'])!r} is not {COPY_REQUESTED!r}")
        trigger_data = {"type": "event", "eventId": str(data.get("id", "")), "source": str(data.get("source", ""))}
        default_id = str(data.get("id") or message_id)
        data = data["detail"]
    elif TRIGGER_ATTRIBUTE in attributes:
        check_depth(attributes[TRIGGER_ATTRIBUTE], f"message attribute {TRIGGER_ATTRIBUTE}")
        try:
            trigger_data = loads_strict(attributes[TRIGGER_ATTRIBUTE])
        except ValueError as exc:
            raise JobRejected(f"message attribute {TRIGGER_ATTRIBUTE} is not valid JSON: {exc}") from exc
        if not isinstance(trigger_data, dict) or trigger_data.get("type") != "import":
            raise JobRejected(f"message attribute {TRIGGER_ATTRIBUTE} must be an object with type 'import'")
        default_id = message_id
    else:
        trigger_data = {"type": "sqs", "messageId": message_id}
        default_id = message_id
    job = parse_job(data)
    if job.jobId is None:
        job = job.model_copy(update={"jobId": default_id})
        job = parse_job(job.model_dump(exclude_none=True))  # the default ID must satisfy the same pattern
    check_text(trigger_data, "the trigger (the event's source, or message attribute hicopyTrigger)")
    trigger = Trigger.model_validate(trigger_data)
    state = WorkflowState(job=job, trigger=trigger, receivedAt=iso(clock.now()))
    state_size = len(json.dumps(state.dump(), separators=(",", ":")).encode())
    if state_size > MAX_STATE_BYTES:
        raise JobRejected(
            f"the job is too large: its execution input would be {state_size} bytes (max {MAX_STATE_BYTES})"
        )
    return Accepted(job=job, trigger=trigger, state=state)


@dataclass(frozen=True)
class Admission:
    outcome: Literal["started", "duplicate"]
    execution_arn: str


def admit(accepted: Accepted, executions: ExecutionsPort) -> Admission:
    """Start the job's execution. A job ID that already names an execution is a duplicate when that execution runs
    the same job (a redelivered message: nothing to do), and ``JobIdReused`` when it runs another one (the sender
    must be told: dropping it would lose a job without a word)."""
    job_id = accepted.state.job_id
    arn, started = executions.start(job_id, accepted.state.dump())
    if started:
        return Admission("started", arn)
    existing = executions.input_of(arn).get("job")
    if same_job(existing, accepted.job):
        return Admission("duplicate", arn)
    raise JobIdReused(
        f"job ID {job_id} is already used by execution {arn} for a different job; send this job with a new jobId",
        execution_arn=arn,
    )


def same_job(existing: Any, job: CopyJob) -> bool:
    """Whether ``existing`` (a job as stored in an execution input) asks for the same copy as ``job``: compared as
    validated jobs (defaults filled in, selections as sets), never by message ID, trigger or receive time."""
    try:
        other = CopyJob.model_validate(existing)
    except ValueError:  # not a job this version can read: not provably the same
        return False
    return _canonical(other) == _canonical(job)


def _canonical(job: CopyJob) -> str:
    data = job.model_dump(mode="json", exclude_none=True)
    if not data.get("destination"):
        data.pop("destination", None)  # {} and no destination both mean a new image set
    for name in ("instances", "series"):
        if data.get(name) is not None:
            data[name] = sorted(data[name])
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects, found without parsing or recursion: strings are cut out, then
    the brackets are counted. (For text that is not JSON the count is only an estimate; it is never too low.)"""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]++")


def check_depth(text: str, what: str) -> None:
    """``JobRejected`` when ``text`` nests deeper than ``MAX_JSON_DEPTH`` (checked before any parsing)."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise JobRejected(f"{what} nests arrays or objects {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed")


def check_text(value: Any, what: str) -> None:
    """``JobRejected`` when ``value`` holds a string that is not Unicode text: a lone surrogate, which JSON can
    spell as an escape (``"\\ud800"``) and which no UTF-8 encoder, so no AWS API downstream, takes. (The job's own
    fields are refused by their patterns; the trigger travels into the execution input and the events.)"""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JobRejected(f"{what} holds text that is not valid Unicode (a lone surrogate)") from None


def loads_safe(text: str) -> Any:
    """``json.loads``, or None for text that is too deeply nested or not JSON (reading a rejected body's hints)."""
    if json_depth(text) > MAX_JSON_DEPTH:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def loads_strict(text: str) -> Any:
    """``json.loads`` without Python's extensions: the tokens ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON,
    and a number too large for a float (``1e999``) is not read as infinity (pydantic would dump an infinity in a
    trigger's extra keys as null into the execution input). ``ValueError`` with the reason."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value (JSON numbers are finite: no NaN, Infinity or -Infinity)")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"the number {token[:32]} is out of range (numbers must be finite)")
    return value


def rejected_event(
    body: str, reason: JobRejected, *, message_id: str, trigger_type: str, clock: Clock
) -> dict[str, Any]:
    """Detail of ``Copy Job Rejected``: what was wrong, and the start of the original message."""
    text, encoding, truncated, size = excerpt(body)
    hints = _hints(body)
    existing = reason.execution_arn if isinstance(reason, JobIdReused) else None
    now = iso(clock.now())
    detail = RejectedDetail(
        jobId=hints.get("jobId"),
        correlationId=hints.get("correlationId"),
        datastoreId=hints.get("datastoreId"),
        reason=Reason(code=reason.code, message=reason.message[:MAX_REASON_CHARS]),
        trigger=TriggerOut.model_validate(
            {"type": trigger_type, **(_event_ids(body) if trigger_type == "event" else {}), "messageId": message_id}
        ),
        originalBody=text,
        originalBodyEncoding=encoding,
        originalBodyTruncated=truncated,
        originalBodyBytes=size,
        existingExecutionArn=existing,
        receivedAt=now,
        completedAt=now,
    )
    return dump(detail)


REJECTION_KEPT = "KEPT"  # the message's dead-letter copy was sent
REJECTION_PUBLISHED = "PUBLISHED"  # and its Copy Job Rejected was put


def reject(
    body: str,
    reason: JobRejected,
    *,
    message_id: str,
    trigger_type: str,
    dead_letters: MessageSenderPort,
    publisher: EventPublisherPort,
    clock: Clock,
    marker: RejectionMarkerPort | None = None,
    receipts: DeliveryReceiptPort | None = None,
    receipt_window: float = RECEIPT_WINDOW_SECONDS,
) -> dict[str, Any] | None:
    """Keep the message in the dead-letter queue, then publish ``Copy Job Rejected``, each once per message.

    With ``marker`` (the state table's ``rejected#<messageId>``), a message redelivered because the publish failed
    (an EventBridge outage) is not copied to the DLQ again, and one whose event is out publishes nothing more. A
    crash between a side effect and its mark can still repeat that one step (EventBridge and SQS take no
    idempotency token). With ``receipts`` (``hicopy.domain.delivery``), a put whose answer was lost is not repeated
    while its delivery receipt may still come (``DeliveryUnconfirmed``: the message comes back later), and one whose
    receipt came is only marked. Returns the published detail, or None when the event was already published.
    """
    stage = marker.stage(message_id) if marker is not None else None
    if stage == REJECTION_PUBLISHED:
        return None
    if stage != REJECTION_KEPT:
        attributes = {
            "rejectionReason": reason.message[:256],
            "rejectionCode": reason.code,
            "originalMessageId": message_id,
        }
        if isinstance(reason, JobIdReused):
            attributes["existingExecutionArn"] = reason.execution_arn
        dead_letters.send(body, attributes)
        if marker is not None:
            marker.mark(message_id, clock.now(), stage=REJECTION_KEPT)
    identity = rejection_identity(message_id)
    if receipts is not None and receipt_of(identity, receipts, clock.now(), receipt_window) is not None:
        if marker is not None:
            marker.mark(message_id, clock.now(), stage=REJECTION_PUBLISHED)
        return None
    detail = rejected_event(body, reason, message_id=message_id, trigger_type=trigger_type, clock=clock)
    if receipts is not None:
        put_tracked(identity, lambda: publisher.publish(REJECTED, detail), receipts, clock.now())
    else:
        publisher.publish(REJECTED, detail)
    if marker is not None:
        marker.mark(message_id, clock.now(), stage=REJECTION_PUBLISHED)
    return detail


def trigger_type_of(body: str, attributes: dict[str, str]) -> str:
    """The trigger type of a rejected message, classified as ``accept`` does."""
    data = loads_safe(body)
    if _is_event(data):
        return "event"
    return "import" if TRIGGER_ATTRIBUTE in attributes else "sqs"


def _is_event(data: Any) -> TypeGuard[dict[str, Any]]:
    """A whole EventBridge event (both keys); anything else is a raw job, where either key is an unknown field."""
    return isinstance(data, dict) and "detail-type" in data and "detail" in data


# What a rejected event's trigger echoes of its envelope, when well-formed (EventBridge event IDs are UUIDs; a
# source is printable ASCII): the same keys as an accepted event's trigger.
_EVENT_ID_PATTERN = r"[A-Za-z0-9-]{1,64}"
_EVENT_SOURCE_PATTERN = r"[\x21-\x7e]{1,256}"


def _event_ids(body: str) -> dict[str, str]:
    """``eventId`` and ``source`` of a message that is a whole event ("" where absent or ill-formed); else none."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not _is_event(data):
        return {}
    found = {"eventId": data.get("id"), "source": data.get("source")}
    patterns = {"eventId": _EVENT_ID_PATTERN, "source": _EVENT_SOURCE_PATTERN}
    return {
        key: value if isinstance(value, str) and re.fullmatch(patterns[key], value) else ""
        for key, value in found.items()
    }


def _hints(body: str) -> dict[str, str]:
    """Identifiers of a rejected job, when they are there and well-formed (never echo arbitrary values)."""
    data = loads_safe(body)
    if _is_event(data) and isinstance(data["detail"], dict):
        data = data["detail"]
    if not isinstance(data, dict):
        return {}
    out: dict[str, str] = {}
    for key, pattern in (
        ("jobId", JOB_ID_PATTERN),
        ("datastoreId", DATASTORE_ID_PATTERN),
        ("correlationId", CORRELATION_ID_PATTERN),
    ):
        value = data.get(key)
        if isinstance(value, str) and re.fullmatch(pattern, value):
            out[key] = value
    return out
