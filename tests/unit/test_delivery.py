"""Delivery receipts (``hicopy.domain.delivery``): a put whose answer was lost is reconciled with the event's receipt,
never repeated inside the receipt window; a clear refusal records nothing."""

from __future__ import annotations

from typing import Any

import pytest

from hicopy.contract import FAILED, REJECTED, SUCCEEDED
from hicopy.domain.delivery import (
    RECEIPT_WINDOW_SECONDS,
    identity_of,
    outcome_identity,
    put_tracked,
    receipt_of,
    rejection_identity,
)
from hicopy.domain.ports import DeliveryState, EventIdentity
from hicopy.errors import DeliveryUnconfirmed, EventPublishFailed, ServiceCallInterrupted, ServiceInternalError


class Receipts:
    def __init__(self) -> None:
        self.items: dict[EventIdentity, DeliveryState] = {}

    def state(self, identity: EventIdentity, now: float) -> DeliveryState:
        return self.items.get(identity, DeliveryState())

    def pend(self, identity: EventIdentity, now: float) -> None:
        self.items[identity] = DeliveryState(self.state(identity, now).received, now)

    def receive(self, identity: EventIdentity, now: float, *, detail_type: str) -> None:
        self.items[identity] = DeliveryState(detail_type, self.state(identity, now).pending_since)


ID = outcome_identity("job-1", "2026-11-27T10:00:00.120Z")


def test_a_receipt_says_the_event_is_out() -> None:
    receipts = Receipts()
    receipts.pend(ID, 100.0)
    receipts.receive(ID, 100.5, detail_type=SUCCEEDED)
    assert receipt_of(ID, receipts, 101.0) == SUCCEEDED


def test_a_pending_put_within_the_window_waits_for_its_receipt() -> None:
    receipts = Receipts()
    receipts.pend(ID, 100.0)
    with pytest.raises(DeliveryUnconfirmed):
        receipt_of(ID, receipts, 100.0 + RECEIPT_WINDOW_SECONDS - 1)


def test_a_pending_put_past_the_window_is_put_again() -> None:
    receipts = Receipts()
    receipts.pend(ID, 100.0)
    assert receipt_of(ID, receipts, 100.0 + RECEIPT_WINDOW_SECONDS) is None
    assert receipt_of(ID, Receipts(), 100.0) is None  # never tried: put


def test_only_an_ambiguous_failure_records_a_pending_put() -> None:
    receipts = Receipts()

    def lost() -> None:
        raise ServiceCallInterrupted("read timeout")

    with pytest.raises(ServiceCallInterrupted):
        put_tracked(ID, lost, receipts, 42.0)
    assert receipts.state(ID, 43.0).pending_since == 42.0
    for refusal in (EventPublishFailed("FailedEntryCount 1"), ServiceInternalError("500")):
        other, fresh = rejection_identity(f"m-{refusal.code}"), Receipts()

        def refused(exc: Exception = refusal) -> None:
            raise exc

        with pytest.raises(type(refusal)):
            put_tracked(other, refused, fresh, 42.0)
        assert fresh.state(other, 43.0) == DeliveryState()  # a clear refusal put nothing: no wait


@pytest.mark.parametrize(
    ("detail_type", "detail", "expected"),
    [
        (SUCCEEDED, {"jobId": "j", "receivedAt": "t"}, outcome_identity("j", "t")),
        (FAILED, {"jobId": "j", "receivedAt": "t"}, outcome_identity("j", "t")),
        (REJECTED, {"trigger": {"type": "sqs", "messageId": "m"}}, rejection_identity("m")),
        (SUCCEEDED, {"jobId": "j"}, None),
        (REJECTED, {"trigger": "x"}, None),
        ("Import Job Planned", {"jobId": "j", "receivedAt": "t"}, None),
        (SUCCEEDED, "not a dict", None),
    ],
)
def test_the_identity_of_an_event_comes_from_its_detail(detail_type: str, detail: Any, expected: Any) -> None:
    assert identity_of(detail_type, detail) == expected


def test_the_terminal_and_rejection_publisher_never_lets_botocore_resend_a_put() -> None:
    """botocore's standard mode retries a read timeout by sending the request again: a duplicate no receipt would
    catch. The publisher of the receipted events makes one attempt per call; the caller's retries do the rest."""
    from hicopy.adapters.aws import EventBridgePublisher, SingleSendPublisher

    assert SingleSendPublisher.CONFIG.retries == {"mode": "standard", "total_max_attempts": 1}
    assert EventBridgePublisher.CONFIG.retries["total_max_attempts"] > 1  # the import planner's reports keep them
    for handler in ("publish", "execution_ended", "consumer"):
        module = __import__(f"hicopy.handlers.{handler}", fromlist=["_adapters"])
        assert module.SingleSendPublisher is SingleSendPublisher, handler
