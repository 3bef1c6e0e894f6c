"""``hicopy dlq`` (the job dead-letter queue, ``--redrive``) and ``hicopy backlog`` (queue depth, time to drain).

The job DLQ holds two kinds of messages: *rejected* jobs (the consumer put them there with the attributes
``rejectionCode``/``rejectionReason``, and published ``Copy Job Rejected``: fix and resend them, never redrive) and
*undeliverable* ones (SQS moved them after the job queue's maximum receives, e.g. StartExecution kept failing).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hicopy.cli.domain import BODY_ENCODING_ATTRIBUTE, REJECTION_CODE_ATTRIBUTE, REJECTION_REASON_ATTRIBUTE
from hicopy.cli.output import duration, shorten, table
from hicopy.cli.stack import Stack

if TYPE_CHECKING:
    from hicopy.cli.context import Context

REJECTED = "rejected"
UNDELIVERABLE = "undeliverable"
PEEK_VISIBILITY_SECONDS = 30  # messages are hidden this long at most while listed, then made visible again
RECEIVE_WAIT_SECONDS = 1  # long polling, when short polling found fewer messages than the queue holds


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str  # as the sender sent it (decoded when the DLQ copy is base64)
    raw_body: str
    encoding: str  # utf-8 | base64
    kind: str  # rejected | undeliverable
    code: str | None
    reason: str | None
    sent_at: float | None
    receive_count: int | None
    attributes: dict[str, dict[str, Any]]

    @property
    def job_id(self) -> str | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("detail"), dict) and "detail-type" in data:
            data = data["detail"]
        value = data.get("jobId") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "kind": self.kind,
            "rejectionCode": self.code,
            "rejectionReason": self.reason,
            "jobId": self.job_id,
            "ageSeconds": None if self.sent_at is None else round(now - self.sent_at, 3),
            "receiveCount": self.receive_count,
            "bodyEncoding": self.encoding,
            "body": self.body,
        }


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attributes = dict(message.get("MessageAttributes") or {})
    text = {k: str(v.get("StringValue", "")) for k, v in attributes.items() if "StringValue" in v}
    raw = str(message.get("Body", ""))
    body, encoding = raw, "utf-8"
    if text.get(BODY_ENCODING_ATTRIBUTE) == "base64":
        try:
            body = base64.b64decode(raw).decode("utf-8", errors="surrogatepass")
            encoding = "base64"
        except (binascii.Error, ValueError):
            pass
    system = message.get("Attributes") or {}
    sent = system.get("SentTimestamp")
    count = system.get("ApproximateReceiveCount")
    return DeadLetter(
        message_id=str(message["MessageId"]),
        receipt_handle=str(message["ReceiptHandle"]),
        body=body,
        raw_body=raw,
        encoding=encoding,
        kind=REJECTED if REJECTION_CODE_ATTRIBUTE in text else UNDELIVERABLE,
        code=text.get(REJECTION_CODE_ATTRIBUTE),
        reason=text.get(REJECTION_REASON_ATTRIBUTE),
        sent_at=int(sent) / 1000 if sent else None,
        receive_count=int(count) if count else None,
        attributes=attributes,
    )


def receive_dead_letters(stack: Stack, limit: int) -> tuple[list[DeadLetter], int]:
    """Up to ``limit`` messages of the job DLQ, each received once (hidden for a short while), and about how many
    the queue holds."""
    sqs = stack.client("sqs")
    visible = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    total = int(visible["Attributes"].get("ApproximateNumberOfMessages", 0))
    expected = min(limit, total)
    found: dict[str, DeadLetter] = {}
    wait = 0
    while len(found) < limit:
        answer = sqs.receive_message(
            QueueUrl=stack.dlq_url,
            MaxNumberOfMessages=min(10, limit - len(found)),
            VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
            WaitTimeSeconds=wait,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        new = [m for m in answer.get("Messages") or [] if m["MessageId"] not in found]
        for m in new:
            found[m["MessageId"]] = _dead_letter(m)
        if not new:
            if wait or len(found) >= expected:
                break
            wait = RECEIVE_WAIT_SECONDS  # fewer than the queue said it holds: long polling asks every server
    return list(found.values()), max(total, len(found))


def release(stack: Stack, letters: Sequence[DeadLetter]) -> None:
    """Make listed messages visible again at once."""
    sqs = stack.client("sqs")
    for start in range(0, len(letters), 10):
        entries = [
            {"Id": str(n), "ReceiptHandle": d.receipt_handle, "VisibilityTimeout": 0}
            for n, d in enumerate(letters[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=stack.dlq_url, Entries=entries)


def redrive(stack: Stack, letter: DeadLetter) -> str:
    """Send an undeliverable message back to the job queue (same body and attributes), then delete it from the DLQ.

    A raw job without a ``jobId`` ran under the default job ID, its SQS message ID (kept by the move to the DLQ);
    the message sent back carries that ID as ``jobId`` so that it keeps it (and still starts at most once).
    """
    body = letter.raw_body
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and "jobId" not in data and "detail-type" not in data:
        body = json.dumps({"jobId": letter.message_id, **data}, separators=(",", ":"))
    attributes = {
        k: {key: v[key] for key in ("DataType", "StringValue", "BinaryValue") if key in v}
        for k, v in letter.attributes.items()
    }
    params: dict[str, Any] = {"QueueUrl": stack.job_queue_url, "MessageBody": body}
    if attributes:
        params["MessageAttributes"] = attributes
    sqs = stack.client("sqs")
    message_id = str(sqs.send_message(**params)["MessageId"])
    sqs.delete_message(QueueUrl=stack.dlq_url, ReceiptHandle=letter.receipt_handle)
    return message_id


def _render_letters(letters: Sequence[DeadLetter], total: int, now: float, *, bodies: bool) -> str:
    kinds = {k: sum(1 for d in letters if d.kind == k) for k in (REJECTED, UNDELIVERABLE)}
    shown = f"{len(letters)}" if len(letters) >= total else f"{len(letters)} of about {total}"
    head = f"{shown} message(s) in the job dead-letter queue: {kinds[REJECTED]} rejected, "
    head += f"{kinds[UNDELIVERABLE]} undeliverable"
    if not letters:
        return head
    rows = [
        [
            d.message_id,
            d.kind,
            d.code or "-",
            d.job_id or "-",
            duration(None if d.sent_at is None else now - d.sent_at),
            shorten(d.reason or f"received {d.receive_count} times without success", 100),
        ]
        for d in letters
    ]
    text = head + "\n" + table(["MESSAGE ID", "KIND", "CODE", "JOB ID", "AGE", "REASON"], rows)
    if bodies:
        for d in letters:
            text += f"\n\n{d.message_id} ({d.encoding}{', decoded' if d.encoding == 'base64' else ''}):\n{d.body}"
    if kinds[REJECTED]:
        text += "\n\nrejected jobs: fix them and submit them again (never redriven)"
    if kinds[UNDELIVERABLE]:
        text += "\nundeliverable jobs: `hicopy dlq --redrive` sends them back to the job queue"
    return text


# --- backlog ----------------------------------------------------------------------------------------------------
def backlog(stack: Stack) -> dict[str, Any]:
    sqs, now = stack.client("sqs"), stack.now()
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    queue = sqs.get_queue_attributes(QueueUrl=stack.job_queue_url, AttributeNames=names)["Attributes"]
    dead = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=names[:1])["Attributes"]
    waiting, in_flight, delayed = (int(queue.get(n, 0)) for n in names)
    pages = (
        stack.client("stepfunctions")
        .get_paginator("list_executions")
        .paginate(stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING")
    )
    running = sum(len(page["executions"]) for page in pages)
    config = stack.config
    jobs_ahead = waiting + in_flight + delayed + running
    return {
        "queued": waiting,
        "inFlight": in_flight,
        "delayed": delayed,
        "running": running,
        "deadLetters": int(dead.get("ApproximateNumberOfMessages", 0)),
        "oldestJobAgeSeconds": _oldest_age(stack, now),
        "copyRatePerSecond": config.copy_rate_per_second,
        "copyRateFrom": config.source,
        # Every job makes at least one CopyImageSet call, paced account-wide: a lower bound.
        "drainSecondsAtLeast": round(jobs_ahead / config.copy_rate_per_second, 1),
    }


def _oldest_age(stack: Stack, now: float) -> float | None:
    """CloudWatch's ``ApproximateAgeOfOldestMessage`` of the job queue (latest minute in the last 15), or None."""
    queue_name = stack.job_queue_url.rstrip("/").rsplit("/", 1)[-1]
    answer = stack.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_name}],
        StartTime=datetime.fromtimestamp(now - 900, UTC),
        EndTime=datetime.fromtimestamp(now, UTC),
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(answer.get("Datapoints") or [], key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def _render_backlog(b: dict[str, Any]) -> str:
    age = b["oldestJobAgeSeconds"]
    rows = [
        ("job queue", f"{b['queued']} waiting, {b['inFlight']} being handed to executions, {b['delayed']} delayed"),
        ("oldest job", duration(age) if age is not None else "n/a (no CloudWatch datapoint in the last 15 minutes)"),
        ("running jobs", str(b["running"])),
        ("dead letters", f"{b['deadLetters']}" + (" (see `hicopy dlq`)" if b["deadLetters"] else "")),
        ("copy rate", f"{b['copyRatePerSecond']:g} CopyImageSet calls/s ({b['copyRateFrom']})"),
        ("time to drain", f"at least {duration(b['drainSecondsAtLeast'])} (one copy call per job ahead)"),
    ]
    return "\n".join(f"{k.ljust(13)}  {v}" for k, v in rows)


# --- the commands -----------------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "dlq",
        parents=[common],
        help="rejected and undeliverable jobs, with their reasons; --redrive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--redrive", action="store_true", help="send the undeliverable (not rejected) ones back")
    p.add_argument("--bodies", action="store_true", help="print each message body (decoded if stored base64)")
    p.add_argument("--max", type=int, default=100, help="look at most at this many messages (default 100)")
    p.set_defaults(run=run_dlq)

    p = sub.add_parser(
        "backlog",
        parents=[common],
        help="queue depth, oldest job age, time to drain",
        description="Jobs waiting in the job queue, the age of the oldest (CloudWatch ApproximateAgeOfOldestMessage; "
        "n/a without a datapoint), running jobs, dead letters, and the least time to drain them all at the "
        "stack's CopyImageSet rate (read from its functions' configuration; 0.25/s by default).",
    )
    p.set_defaults(run=run_backlog)


def run_dlq(args: argparse.Namespace, context: Context) -> int:
    stack, out = context.stack, context.out
    letters, total = receive_dead_letters(stack, args.max)
    now = stack.now()
    moved: dict[str, str] = {}
    if args.redrive:
        for letter in letters:
            if letter.kind == UNDELIVERABLE:
                moved[letter.message_id] = redrive(stack, letter)
    release(stack, [d for d in letters if d.message_id not in moved])
    data = {"approximateTotal": total, "messages": [d.as_json(now) for d in letters], "redriven": moved}
    text = _render_letters(letters, total, now, bodies=args.bodies)
    if args.redrive:
        text += f"\n\nredriven to the job queue: {len(moved)} undeliverable message(s)"
    out.result(data, text)
    return 0


def run_backlog(args: argparse.Namespace, context: Context) -> int:
    b = backlog(context.stack)
    context.out.result(b, _render_backlog(b))
    return 0
