"""Intake on the local runtime (issue #12, items 6 and 10): bodies that cannot be parsed safely, job IDs reused for
another job, and a job ID used again once Step Functions lets its execution name be reused."""

from __future__ import annotations

import json

from hicopy.contract import REJECTED, SUCCEEDED
from hicopy.domain.intake import MAX_JSON_DEPTH
from offline.runtime import LocalRuntime
from offline.runtime.deploy import ACCOUNT, REGION
from tests.e2e.helpers import only_event, terminal_events


def _job(rt: LocalRuntime, job_id: str, source: str, **extra: object) -> dict[str, object]:
    return {"jobId": job_id, "datastoreId": rt.datastore_id, "source": {"imageSetId": source}, **extra}


def test_a_body_nested_1500_levels_deep_gets_one_rejection_and_one_dlq_copy(rt: LocalRuntime) -> None:
    """Was: RecursionError escaped validation: five receives, then the DLQ with no rejectionCode and no event."""
    body = "[" * 1500 + "]" * 1500  # 3 KB
    message_id = rt.send_job(body)
    rt.run_until_idle(timeout=30)

    event = only_event(rt)
    assert event["detail-type"] == REJECTED
    assert event["detail"]["reason"]["code"] == "JobRejected"
    assert f"1500 levels deep; at most {MAX_JSON_DEPTH}" in event["detail"]["reason"]["message"]
    [dead] = rt.dlq_messages()
    assert dead["Body"] == body
    assert dead["MessageAttributes"]["rejectionCode"] == "JobRejected"
    assert dead["MessageAttributes"]["originalMessageId"] == message_id
    assert sum(b.received for b in rt.sqs_batches()) == 1, "received once, never retried"
    assert rt.executions() == []


def test_a_job_id_reused_for_another_job_is_rejected_naming_the_execution(rt: LocalRuntime) -> None:
    """Was: dropped with an INFO log; the sender was never told. The same job again stays a silent duplicate."""
    src = rt.seed_image_set(series=1, instances_per_series=2)
    other = rt.seed_image_set(series=1, instances_per_series=1)
    first = _job(rt, "reuse-1", src.image_set_id)
    rt.send_job(first)
    rt.run_until_idle(timeout=30)
    [execution] = rt.executions()

    # The same job again, written differently (defaults spelled out, keys reordered): a duplicate, no event.
    rt.send_job(json.dumps({"force": False, **dict(reversed(list(first.items())))}))
    reused_id = rt.send_job(_job(rt, "reuse-1", other.image_set_id))
    rt.run_until_idle(timeout=30)

    events = terminal_events(rt)
    assert [e["detail-type"] for e in events] == [SUCCEEDED, REJECTED]
    rejected = events[1]["detail"]
    assert rejected["reason"]["code"] == "JobIdReused" and rejected["jobId"] == "reuse-1"
    assert rejected["existingExecutionArn"] == execution.arn
    assert execution.arn in rejected["reason"]["message"]
    assert rejected["trigger"] == {"type": "sqs", "messageId": reused_id}
    [dead] = rt.dlq_messages()
    attributes = dead["MessageAttributes"]
    assert attributes["rejectionCode"] == "JobIdReused" and attributes["existingExecutionArn"] == execution.arn
    assert attributes["originalMessageId"] == reused_id
    assert len(rt.executions()) == 1, "nothing new started"
    assert sum(b.received for b in rt.sqs_batches()) == 3 and not any(b.failed for b in rt.sqs_batches())


def _forget_execution(rt: LocalRuntime, execution_arn: str) -> None:
    """What Step Functions does 90 days after an execution closed: its name can be used again."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    machine = backend.describe_state_machine(rt.deployment.state_machine_arn)
    machine.executions[:] = [e for e in machine.executions if e.exec_arn != execution_arn]


def test_a_job_id_used_again_once_its_execution_name_is_reusable_gets_its_event(rt: LocalRuntime) -> None:
    """Was: the outcome marker (90 days, the same window as execution names; DynamoDB deletes expired items days
    late, moto never) made the new run's Publish skip its event: an execution that succeeded with no event."""
    src = rt.seed_image_set(series=1, instances_per_series=1)
    job = _job(rt, "again-1", src.image_set_id)
    rt.send_job(job)
    rt.run_until_idle(timeout=30)
    [first] = rt.executions()
    _forget_execution(rt, first.arn)

    rt.send_job(job)
    rt.run_until_idle(timeout=30)

    [second] = rt.executions()
    assert second.status == "SUCCEEDED" and second.input["receivedAt"] != first.input["receivedAt"]
    events = terminal_events(rt)
    assert [e["detail-type"] for e in events] == [SUCCEEDED, SUCCEEDED]
    assert [e["detail"]["receivedAt"] for e in events] == [first.input["receivedAt"], second.input["receivedAt"]]
