"""Outage budgets and the once-only rejection and safety net, on fakes (the local runtime tests are in
tests/faults (the 2-hour outage) and tests/e2e/test_safety_net.py)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from hicopy.contract import FAILED, REJECTED, SUCCEEDED
from hicopy.domain.backoff import (
    OUTAGE_TOLERANCE_SECONDS,
    PUBLISH_BACKOFF_RATE,
    PUBLISH_FIRST_INTERVAL_SECONDS,
    PUBLISH_MAX_DELAY_SECONDS,
    SQS_MAX_VISIBILITY_SECONDS,
    nominal_delay,
    publish_max_attempts,
    publish_worst_case_seconds,
    redelivery_budget_seconds,
    redelivery_delay,
)
from hicopy.domain.intake import REJECTION_KEPT, REJECTION_PUBLISHED, accept, reject
from hicopy.domain.outcome import ended_execution, publish_for_ended_execution
from hicopy.domain.ports import ExecutionFacts
from hicopy.errors import EventPublishFailed, JobRejected
from infra.config import HicopyConfig
from infra.ingress import MAX_RECEIVE_COUNT
from tests.support.contracts import assert_valid_event
from tests.support.fakes import FakeClock, FakePublisher, FakeQueue

DS = "a" * 32
ARN = "arn:aws:states:us-east-1:111122223333:execution:sm:job-1"


# --- budgets ------------------------------------------------------------------------------------------------------
def test_publish_outlasts_the_outage_tolerance_in_a_hundred_thousand_draws() -> None:
    """Full jitter: each retry waits uniform(0, nominal). The shortest of 100,000 simulated totals still exceeds 2 h."""
    rng = random.Random(12)
    nominal = [
        nominal_delay(k, PUBLISH_FIRST_INTERVAL_SECONDS, PUBLISH_BACKOFF_RATE, PUBLISH_MAX_DELAY_SECONDS)
        for k in range(publish_max_attempts())
    ]
    shortest = min(sum(rng.uniform(0, n) for n in nominal) for _ in range(100_000))
    assert shortest > OUTAGE_TOLERANCE_SECONDS, shortest
    assert publish_worst_case_seconds() < 7 * 3600  # and an execution never waits on it for more than 7 h


def test_a_rejection_is_redelivered_for_longer_than_the_tolerance_within_max_receive_count() -> None:
    assert redelivery_budget_seconds(MAX_RECEIVE_COUNT) > OUTAGE_TOLERANCE_SECONDS
    delays = [redelivery_delay(k) for k in range(1, MAX_RECEIVE_COUNT + 3)]
    assert delays == sorted(delays) and max(delays) <= SQS_MAX_VISIBILITY_SECONDS


def test_the_execution_timeout_must_cover_polling_and_an_outage() -> None:
    with pytest.raises(ValueError, match=r"must exceed polling\.maxWaitSeconds"):
        HicopyConfig.model_validate({"datastoreIds": [DS], "executionTimeoutHours": 14})  # 12 h polling + 3 h
    HicopyConfig.model_validate({"datastoreIds": [DS], "executionTimeoutHours": 16})


# --- one DLQ copy and one event per rejected message ----------------------------------------------------------------
class FakeRejectionMarker:
    def __init__(self) -> None:
        self.stages: dict[str, str] = {}

    def stage(self, message_id: str) -> str | None:
        return self.stages.get(message_id)

    def mark(self, message_id: str, now: float, *, stage: str) -> None:
        self.stages[message_id] = stage


class DownPublisher(FakePublisher):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise EventPublishFailed("injected")
        super().publish(detail_type, detail)


def test_a_rejection_redelivered_through_an_outage_keeps_one_copy_and_one_event() -> None:
    body, mid = "{not json", "m-1"
    with pytest.raises(JobRejected) as exc:
        accept(body, message_id=mid, attributes={}, clock=FakeClock())
    dlq, marker, publisher = FakeQueue(), FakeRejectionMarker(), DownPublisher(failures=3)
    outcomes = []
    for _ in range(5):  # the receives of the message
        try:
            outcomes.append(
                reject(
                    body,
                    exc.value,
                    message_id=mid,
                    trigger_type="sqs",
                    dead_letters=dlq,
                    publisher=publisher,
                    clock=FakeClock(),
                    marker=marker,
                )
            )
        except EventPublishFailed:
            assert marker.stages[mid] == REJECTION_KEPT
            outcomes.append("failed")
    assert outcomes[:3] == ["failed"] * 3 and isinstance(outcomes[3], dict) and outcomes[4] is None
    assert len(dlq.messages) == 1 and [t for t, _ in publisher.events] == [REJECTED]
    assert marker.stages[mid] == REJECTION_PUBLISHED
    assert_valid_event(REJECTED, publisher.events[0][1])


# --- the safety net -----------------------------------------------------------------------------------------------
class FakeReader:
    def __init__(self, *, last: tuple[str, str] | None, described: ExecutionFacts) -> None:
        self.last, self.described, self.describes = last, described, 0

    def describe(self, execution_arn: str) -> ExecutionFacts:
        self.describes += 1
        return self.described

    def last_task_input(self, execution_arn: str) -> tuple[str, str] | None:
        return self.last


class FakeOutcomeMarker:
    def __init__(self, seen: set[str] | None = None) -> None:
        self.marked: set[str] = set(seen or ())

    def seen(self, job_id: str, received_at: str, now: float) -> bool:
        return job_id in self.marked

    def mark(self, job_id: str, received_at: str, now: float, *, detail_type: str) -> None:
        self.marked.add(job_id)


STATE = {
    "job": {"jobId": "job-1", "datastoreId": DS, "source": {"imageSetId": "b" * 32}},
    "trigger": {"type": "sqs", "messageId": "m-1"},
    "receivedAt": "2027-01-15T08:00:00.000Z",
}
DONE = {
    **STATE,
    "plan": {
        "source": {"imageSetId": "b" * 32, "versionId": "1"},
        "chunkCount": 1,
        "totalFrames": 1,
        "totalInstances": 1,
        "wholeCopy": True,
        "frameLimit": 1000,
    },
    "destination": {"imageSetId": "c" * 32, "versionId": "1"},
    "completed": [
        {
            "index": 0,
            "destination": {"imageSetId": "c" * 32, "versionId": "1"},
            "statusChecks": 2,
            "completedAt": "2027-01-15T08:01:00.000Z",
        }
    ],
    "chunkIndex": 1,
    "done": True,
}


def _run(status: str, *, last: tuple[str, str] | None, detail_input: str | None, seen: bool = False) -> Any:
    detail = {"executionArn": ARN, "status": status, "input": detail_input}
    if detail_input is None:
        detail["inputDetails"] = {"included": False}
    reader = FakeReader(last=last, described=ExecutionFacts(ARN, "RUNNING", json.dumps(STATE), "States.Runtime"))
    publisher = FakePublisher()
    marker = FakeOutcomeMarker({"job-1"} if seen else None)
    result = publish_for_ended_execution(ended_execution(detail), reader, publisher, FakeClock(), marker)
    return result, publisher.events, reader


@pytest.mark.parametrize(
    ("status", "code"),
    [("TIMED_OUT", "ExecutionTimedOut"), ("ABORTED", "ExecutionAborted"), ("FAILED", "ExecutionFailed")],
)
def test_an_execution_that_ended_mid_copy_gets_a_failure_with_how_it_ended(status: str, code: str) -> None:
    result, events, reader = _run(status, last=("AwaitCopy", json.dumps(STATE)), detail_input=json.dumps(STATE))
    assert result == FAILED and len(events) == 1
    detail = events[0][1]
    assert detail["reason"]["code"] == code and detail["executionArn"] == ARN
    assert reader.describes == (1 if status == "FAILED" else 0)  # only for the error name the event lacks
    if status == "FAILED":
        assert "States.Runtime" in detail["reason"]["message"]
    assert_valid_event(FAILED, detail)


def test_a_publisher_that_died_is_covered_with_the_outcome_it_was_publishing() -> None:
    result, events, _ = _run("FAILED", last=("PublishResult", json.dumps(DONE)), detail_input=json.dumps(STATE))
    assert result == SUCCEEDED and events[0][1]["chunksCompleted"] == 1
    assert_valid_event(SUCCEEDED, events[0][1])


def test_no_task_state_and_no_input_in_the_event_reads_describe_execution_and_keeps_the_events_status() -> None:
    result, events, reader = _run("TIMED_OUT", last=None, detail_input=None)
    assert result == FAILED and reader.describes == 1  # the description still said RUNNING: ignored
    assert events[0][1]["reason"]["code"] == "ExecutionTimedOut"


def test_a_job_whose_event_is_out_gets_nothing_more() -> None:
    for last in (("AwaitCopy", json.dumps(STATE)), ("PublishFailure", json.dumps(DONE)), None):
        result, events, _ = _run("FAILED", last=last, detail_input=json.dumps(STATE), seen=True)
        assert (result, events) == (None, [])


def test_a_succeeded_execution_is_not_the_safety_nets_business() -> None:
    result, events, reader = _run("SUCCEEDED", last=("PublishResult", json.dumps(DONE)), detail_input="{}")
    assert (result, events, reader.describes) == (None, [], 0)
