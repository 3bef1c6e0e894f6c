"""``hicopy dlq`` (and ``--redrive``) and ``hicopy backlog`` on the real queues."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest

from hicopy.contract import REJECTED, SUCCEEDED
from offline.runtime import LocalRuntime
from tests.cli.conftest import CLI, events_of


@pytest.fixture(autouse=True)
def empty_dlq(rt: LocalRuntime) -> Iterator[None]:
    """Each test starts with an empty job dead-letter queue (the runtime is shared by the module)."""
    sqs = rt.client("sqs")  # not PurgeQueue: it is allowed once a minute
    while messages := sqs.receive_message(QueueUrl=rt.deployment.dlq_url, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            sqs.delete_message(QueueUrl=rt.deployment.dlq_url, ReceiptHandle=m["ReceiptHandle"])
    yield


def test_dlq_lists_a_rejected_job_with_its_code_and_leaves_it_there(rt: LocalRuntime, cli: CLI) -> None:
    rt.send_job(json.dumps({"jobId": "typo-1", "datastoreId": rt.datastore_id, "source": {"imageSetID": "x"}}))
    rt.run_until_idle(timeout=30)
    event = events_of(rt, "typo-1")["typo-1"]
    assert event["detail-type"] == REJECTED

    listed = json.loads(cli("--json", "dlq").out)["messages"]

    assert [(m["kind"], m["rejectionCode"], m["jobId"]) for m in listed] == [("rejected", "JobRejected", "typo-1")]
    assert listed[0]["rejectionReason"] == event["detail"]["reason"]["message"][:256]
    text = cli("dlq", "--bodies")  # visible again at once: listed a second time
    assert "rejected" in text.out and "JobRejected" in text.out and "typo-1" in text.out
    assert '"imageSetID": "x"' in text.out and "fix them and submit them again" in text.out
    redrive = cli("dlq", "--redrive")
    assert "redriven to the job queue: 0" in redrive.out
    assert len(rt.dlq_messages()) == 1 and rt.queue_messages(rt.deployment.job_queue_url) == []
    assert "typo-1" not in {e.name for e in rt.executions()}


def test_dlq_decodes_a_base64_body(rt: LocalRuntime, cli: CLI) -> None:
    # How the consumer keeps a body that is not valid Unicode text: its UTF-8 bytes, base64-encoded, flagged.
    rt.client("sqs").send_message(
        QueueUrl=rt.deployment.dlq_url,
        MessageBody=base64.b64encode(b'{"jobId": "odd"}').decode(),
        MessageAttributes={
            "rejectionCode": {"DataType": "String", "StringValue": "JobRejected"},
            "rejectionReason": {"DataType": "String", "StringValue": "invalid copy job"},
            "hicopyBodyEncoding": {"DataType": "String", "StringValue": "base64"},
        },
    )
    [message] = json.loads(cli("--json", "dlq").out)["messages"]
    assert message["bodyEncoding"] == "base64" and message["body"] == '{"jobId": "odd"}' and message["jobId"] == "odd"


def test_dlq_redrive_moves_an_undeliverable_job_back_and_it_runs(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    # What SQS moves after the job queue's maximum receives: the body as sent, no rejection attributes.
    job = {"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    message_id = rt.client("sqs").send_message(QueueUrl=rt.deployment.dlq_url, MessageBody=json.dumps(job))["MessageId"]
    rt.send_job('{"not": "a job"}')
    rt.run_until_idle(timeout=30)

    listed = cli("dlq")
    assert "1 rejected, 1 undeliverable" in listed.out

    moved = json.loads(cli("--json", "dlq", "--redrive").out)
    assert list(moved["redriven"]) == [message_id]
    rt.run_until_idle(timeout=30)
    # The job keeps the job ID it had (its message ID, the default): it still runs at most once.
    assert events_of(rt, message_id)[message_id]["detail-type"] == SUCCEEDED
    assert [m["MessageAttributes"].get("rejectionCode") for m in rt.dlq_messages()] == ["JobRejected"]


def test_backlog_counts_waiting_jobs_and_the_time_to_drain_them(rt: LocalRuntime, cli: CLI) -> None:
    for n in range(3):
        rt.send_job({"jobId": f"b-{n}", "datastoreId": rt.datastore_id, "source": {"imageSetId": "a" * 32}})

    backlog = json.loads(cli("--json", "backlog").out)

    assert backlog["queued"] == 3 and backlog["running"] == 0 and backlog["deadLetters"] == 0
    assert backlog["copyRatePerSecond"] == 0.25
    assert re.fullmatch(r"the environment of the stack's [1-9][0-9]* functions", backlog["copyRateFrom"])
    assert backlog["drainSecondsAtLeast"] == 12.0  # 3 jobs at 0.25 copies/s
    assert backlog["oldestJobAgeSeconds"] is None  # no CloudWatch datapoints locally
    text = cli("backlog").out
    assert "3 waiting" in text and "n/a" in text and "at least 12s" in text
    rt.run_until_idle(timeout=30)
    assert json.loads(cli("--json", "backlog").out)["queued"] == 0
