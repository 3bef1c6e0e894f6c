"""Job queue consumer: one Step Functions execution per valid job that admission lets start now (the others go back
to the queue with a delay: ``hicopy.domain.admission``); invalid jobs are rejected (event + DLQ), never retried.
Partial batch responses: only messages that hit a transient error come back to the queue.

A rejection whose event cannot be published (an EventBridge outage) comes back later, on the schedule of
``hicopy.domain.backoff.redelivery_delay`` (``ChangeMessageVisibility``), so that the queue's receives span more than
the outage tolerance; its dead-letter copy is sent once (the ``rejected#<messageId>`` marker)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import ExecutionStarter, JobRequeuer, MessageVisibility, QueueSender, SingleSendPublisher
from hicopy.adapters.state_table import DeliveryReceipts, DynamoPaceStore, RejectionMarker
from hicopy.clock import Clock, get_clock
from hicopy.domain.admission import ADMISSION_ATTRIBUTE, Admission, Ticket
from hicopy.domain.backoff import redelivery_delay
from hicopy.domain.intake import Accepted, accept, admit, reject, trigger_type_of
from hicopy.errors import JobRejected, OrchestratorError
from hicopy.observability import logger, metrics, tracer
from hicopy.settings import ConsumerEnv, load


@cache
def _adapters() -> tuple[ExecutionStarter, SingleSendPublisher, QueueSender]:
    env = load(ConsumerEnv)
    return (
        ExecutionStarter(env.STATE_MACHINE_ARN),
        SingleSendPublisher(env.EVENT_BUS_NAME, env.EVENT_SOURCE),
        QueueSender(env.REJECTED_QUEUE_URL),
    )


@cache
def _admission() -> tuple[Admission, JobRequeuer]:
    env = load(ConsumerEnv)
    store = DynamoPaceStore(env.STATE_TABLE_NAME)
    return Admission(store, copy_rate=env.COPY_RATE_PER_SECOND, copy_burst=env.COPY_BURST), JobRequeuer(
        env.JOB_QUEUE_URL
    )


@cache
def _rejection_adapters() -> tuple[RejectionMarker, MessageVisibility, DeliveryReceipts]:
    env = load(ConsumerEnv)
    return (
        RejectionMarker(env.STATE_TABLE_NAME),
        MessageVisibility(env.JOB_QUEUE_URL),
        DeliveryReceipts(env.STATE_TABLE_NAME),
    )


def _reject(record: SQSRecord, message_id: str, exc: JobRejected, attributes: dict[str, str]) -> None:
    """Reject once (DLQ copy, then event). A rejection that fails part-way comes back after its redelivery delay."""
    _, publisher, dead_letters = _adapters()
    marker, visibility, receipts = _rejection_adapters()
    try:
        detail = reject(
            record.body,
            exc,
            message_id=message_id,
            trigger_type=trigger_type_of(record.body, attributes),
            dead_letters=dead_letters,
            publisher=publisher,
            clock=get_clock(),
            marker=marker,
            receipts=receipts,
            receipt_window=load(ConsumerEnv).RECEIPT_WINDOW_SECONDS,
        )
    except OrchestratorError as failure:
        receives = int(record.attributes.approximate_receive_count or 1)
        delay = redelivery_delay(receives)
        logger.warning(
            "rejection not completed; the message comes back later",
            extra={"message_id": message_id, "error": failure.code, "receive": receives, "delay": delay},
        )
        try:
            visibility.delay(record.receipt_handle, delay)
        except OrchestratorError as also:  # the queue's own visibility timeout brings it back sooner
            logger.warning("could not delay the message", extra={"message_id": message_id, "error": also.code})
        raise
    if detail is None:
        logger.info("rejection already published for this message", extra={"message_id": message_id})


def record_handler(record: SQSRecord) -> str:
    starter, _, _ = _adapters()
    # Read the raw record: a Binary attribute has no stringValue, and must not break the message.
    raw = record.raw_event.get("messageAttributes") or {}
    attributes = {k: str(v.get("stringValue") or "") for k, v in raw.items() if isinstance(v, dict)}
    clock = get_clock()
    sent_at = min(int(record.attributes.sent_timestamp or 0) / 1000 or clock.now(), clock.now())
    ticket = Ticket.of(
        message_id=record.message_id, sent_at=sent_at, attribute=attributes.pop(ADMISSION_ATTRIBUTE, None)
    )
    try:
        accepted = accept(record.body, message_id=ticket.message_id, attributes=attributes, clock=clock)
        if _deferred(record, raw, accepted, ticket, clock):
            return "deferred"
        admission = admit(accepted, starter)
    except JobRejected as exc:
        logger.warning("job rejected", extra={"message_id": ticket.message_id, "code": exc.code, "reason": exc.message})
        _reject(record, ticket.message_id, exc, attributes)
        metrics.add_metric(name="JobsRejected", unit=MetricUnit.Count, value=1)
        return "rejected"
    job_id = accepted.state.job_id
    if admission.outcome == "started":
        logger.info(
            "job accepted",
            extra={
                "job_id": job_id,
                "execution_arn": admission.execution_arn,
                "trigger": accepted.trigger.type,
                **_backlog(ticket, clock),
            },
        )
        metrics.add_metric(name="JobsAccepted", unit=MetricUnit.Count, value=1)
        return "started"
    logger.info("duplicate job ignored: an execution runs this same job", extra={"job_id": job_id})
    metrics.add_metric(name="DuplicateJobs", unit=MetricUnit.Count, value=1)
    return "duplicate"


def _deferred(record: SQSRecord, raw: dict[str, Any], accepted: Accepted, ticket: Ticket, clock: Clock) -> bool:
    """Admission, in one place: True when the job went back to the queue (a delayed copy; the original is then
    deleted as processed); False when its execution may start now. ``BacklogExpired`` past the queue's retention."""
    admission, requeuer = _admission()
    decision = admission.decide(accepted.job.priority, ticket, clock)
    metrics.add_metric(name="AdmissionHorizonSeconds", unit=MetricUnit.Seconds, value=round(decision.horizon, 1))
    metrics.add_metric(name="JobAgeSeconds", unit=MetricUnit.Seconds, value=round(clock.now() - ticket.first_seen))
    if decision.admitted or decision.ticket is None:
        return False
    extra = {ADMISSION_ATTRIBUTE: decision.ticket.attribute()}
    if not requeuer.requeue(record.body, raw, extra, decision.delay):
        logger.warning("job admitted without waiting: its message attributes leave no room for the admission ticket")
        return False
    metrics.add_metric(name="JobsDeferred", unit=MetricUnit.Count, value=1)
    logger.debug("job deferred", extra={"delay_seconds": decision.delay, "horizon_seconds": round(decision.horizon)})
    return True


def _backlog(ticket: Ticket, clock: Clock) -> dict[str, Any]:
    """The acceptance log's view of the backlog: the job's wait, the queue's depth, and the expected time to drain
    it at the configured rate (one copy per job: a lower bound when jobs have several chunks)."""
    admission, requeuer = _admission()
    depth = requeuer.depth()
    return {
        "waited_seconds": round(clock.now() - ticket.first_seen),
        "queue_depth": depth,
        "drain_hours_estimate": round(admission.drain_seconds(depth) / 3600, 2),
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=BatchProcessor(event_type=EventType.SQS), context=context
    )
    return dict(response)
