"""Back-off, throttling, conflicts and redrive, observed through the real state machine's execution history."""

from __future__ import annotations

from collections.abc import Callable

from hicopy.contract import SUCCEEDED
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event

# The default polling configuration (cdk.json): first interval 5 s, backoff rate 2, max delay 120 s, full jitter.
FIRST_INTERVAL, RATE, MAX_DELAY = 5.0, 2.0, 120.0


# AwaitCopy's backoff with full jitter (its waits, when no copy event comes): tests/e2e/test_e2e_copy_events.py


def test_throttled_copy_is_retried_and_copies_once(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=1)
    rt.emulator.inject_fault("CopyImageSet", "ThrottlingException", times=2)
    rt.send_job({"jobId": "throttled", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)

    assert only_event(rt)["detail-type"] == SUCCEEDED
    calls = rt.emulator.calls_to("CopyImageSet")
    assert [c.error_code for c in calls] == ["ThrottlingException", "ThrottlingException", None]
    [execution] = rt.executions()
    submits = rt.state_attempts(execution.arn, "Submit")
    assert [a["error"] for a in submits] == ["ServiceThrottled", "ServiceThrottled", None]


def test_conflict_on_the_destination_is_retried(rt: LocalRuntime) -> None:
    dest = rt.seed_image_set(series=1, instances_per_series=1)
    src = rt.seed_image_set(series=1, instances_per_series=1, study_uid=dest.study_uid, is_primary=False)
    rt.emulator.inject_fault("CopyImageSet", "ConflictException", times=2)  # e.g. another writer holds the destination
    rt.send_job(
        {
            "jobId": "locked",
            "datastoreId": rt.datastore_id,
            "source": {"imageSetId": src.image_set_id},
            "destination": {"imageSetId": dest.image_set_id},
            "force": True,
        }
    )
    rt.run_until_idle(timeout=60)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    [execution] = rt.executions()
    errors = [a["error"] for a in rt.state_attempts(execution.arn, "Submit")]
    assert errors == ["ImageSetConflict", "ImageSetConflict", None]
    copies = rt.emulator.calls_to("CopyImageSet")
    assert [c.error_code for c in copies] == ["ConflictException", "ConflictException", None]
    assert [v["versionId"] for v in rt.emulator.versions(rt.datastore_id, dest.image_set_id)] == ["1", "2"]


def test_a_job_that_keeps_failing_is_redriven_to_the_dlq(make_runtime: Callable[..., LocalRuntime]) -> None:
    # The consumer cannot start executions (a wrong state machine ARN): every receive fails the message, and after
    # maxReceiveCount receives SQS moves it to the job DLQ. Visibility timeouts run on the scaled clock.
    rt = make_runtime(
        time_scale=0.001,
        env_overrides={
            "JobConsumer": {"STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:missing"}
        },
    )
    src = rt.seed_image_set()
    job = {"jobId": "undeliverable", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    rt.send_job(job)
    rt.run_until_idle(timeout=60)

    [kept] = rt.dlq_messages()
    assert kept["body"] == job
    batches = rt.sqs_batches()
    assert len(batches) == 5  # maxReceiveCount of the job queue's redrive policy
    assert all(b.failed == [kept["MessageId"]] for b in batches)
    assert len(rt.invocations_of("JobConsumer")) == 5
    assert rt.executions() == []
    assert rt.queue_messages("JobQueue") == []
