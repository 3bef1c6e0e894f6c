"""Delivery receipts: a terminal or rejection event is put on the bus once, even when PutEvents' answer is lost.

EventBridge takes no idempotency token, and a ``PutEvents`` whose answer never came (read timeout, connection closed
after sending: ``ServiceCallInterrupted`` at the adapter edge) may have been accepted. So the orchestrator listens to
its own bus: a rule matching our source and the three detail-types invokes the receipt function, which records a
*receipt* under the event's identity (``identity_of``: job ID + the run's ``receivedAt`` for a terminal event, the
message ID for a rejection — the keys of the ``outcome#`` and ``rejected#`` markers).

The publisher (``put_once``):

- receipt present: the event is out; the caller writes its marker and puts nothing;
- a put whose answer was lost is *pending* for less than ``RECEIPT_WINDOW_SECONDS`` and no receipt yet:
  ``DeliveryUnconfirmed`` (transient: Publish's retrier, or the rejected message's redelivery, asks again later);
- otherwise put; an ambiguous failure records the attempt as pending (its time), then raises as before.

A clear refusal (an error response, 4xx or 5xx, or ``FailedEntryCount > 0``, ``EventPublishFailed``) put nothing, so
it records nothing: the retry puts again at once. Residual case: a receipt later than the window (the receipt
function throttled or failing, then retried by Lambda a minute later) lets a second put through; EventBridge also
delivers at-least-once to targets. Consumers deduplicate on the identity above (``jobId`` + ``receivedAt``;
``trigger.messageId`` for ``Copy Job Rejected``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hicopy.contract import FAILED, REJECTED, SUCCEEDED
from hicopy.domain.ports import DeliveryReceiptPort, EventIdentity
from hicopy.errors import DeliveryUnconfirmed, ServiceCallInterrupted

# How long a put whose answer was lost waits for its receipt before it is put again (the default of the
# ``receiptWindowSeconds`` setting, infra/config.py). EventBridge normally hands an event to a Lambda target well
# within a second, and Lambda's asynchronous queue adds seconds at most when it is not backed up; 120 s leaves room
# for the receipt function's cold start and an early redelivery attempt, i.e. two orders of magnitude over the usual
# path. It stays far below Publish's retrier budget (hicopy.domain.backoff: an expected 3 h; waiting costs about 6 of
# its 77 attempts) and below the first redelivery delay of a rejected message (300 s: a redelivered rejection finds
# its pending attempt past the window).
RECEIPT_WINDOW_SECONDS = 120


def outcome_identity(job_id: str, received_at: str) -> EventIdentity:
    """A terminal event's identity: one run of a job (as the ``outcome#<jobId>`` marker tells runs apart)."""
    return EventIdentity(kind="outcome", key=job_id, run=received_at)


def rejection_identity(message_id: str) -> EventIdentity:
    """A ``Copy Job Rejected``'s identity: the rejected message (as the ``rejected#<messageId>`` marker)."""
    return EventIdentity(kind="rejection", key=message_id)


def identity_of(detail_type: str, detail: Any) -> EventIdentity | None:
    """The identity of one of our events as the receipt function sees it on the bus, from fields its detail
    already carries; None for an event that is not ours to receipt (or not well-formed)."""
    if not isinstance(detail, dict):
        return None
    if detail_type in (SUCCEEDED, FAILED):
        job_id, received_at = detail.get("jobId"), detail.get("receivedAt")
        if isinstance(job_id, str) and job_id and isinstance(received_at, str) and received_at:
            return outcome_identity(job_id, received_at)
        return None
    if detail_type == REJECTED:
        trigger = detail.get("trigger")
        message_id = trigger.get("messageId") if isinstance(trigger, dict) else None
        return rejection_identity(message_id) if isinstance(message_id, str) and message_id else None
    return None


def receipt_of(
    identity: EventIdentity, receipts: DeliveryReceiptPort, now: float, window: float = RECEIPT_WINDOW_SECONDS
) -> str | None:
    """The detail-type of the event's receipt if it was delivered; None when it should be put now.
    ``DeliveryUnconfirmed`` while an ambiguous put is younger than ``window`` and no receipt has come."""
    state = receipts.state(identity, now)
    if state.received is not None:
        return state.received
    if state.pending_since is not None:
        age = now - state.pending_since
        if age < window:
            raise DeliveryUnconfirmed(
                f"an earlier put of this {identity.kind} event lost its answer {age:.0f} s ago and no receipt came "
                f"yet; it is put again only after {window:.0f} s without one"
            )
    return None


def put_tracked(identity: EventIdentity, put: Callable[[], None], receipts: DeliveryReceiptPort, now: float) -> None:
    """Put the event; when the answer is lost (the put may have been accepted), record the attempt as pending before
    the error goes on (a clear refusal records nothing)."""
    try:
        put()
    except ServiceCallInterrupted:
        receipts.pend(identity, now)
        raise
