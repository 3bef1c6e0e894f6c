"""Job queue consumer: one Step Functions execution per valid job that admission lets start now (the others go back
to the queue with a delay: ``hicopy.domain.admission``); invalid jobs are rejected (event + DLQ), never retried.
Partial batch responses: only messages that hit a transient error come back to the queue."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import DynamoPaceStore, EventBridgePublisher, ExecutionStarter, JobRequeuer, QueueSender
from hicopy.clock import Clock, get_clock
from hicopy.domain.admission import ADMISSION_ATTRIBUTE, Admission, Ticket
from hicopy.domain.intake import Accepted, accept, reject, trigger_type_of
from hicopy.errors import JobRejected
from hicopy.observability import logger, metrics, tracer
from hicopy.settings import ConsumerEnv, load


@cache
def _adapters() -> tuple[ExecutionStarter, EventBridgePublisher, QueueSender]:
    env = load(ConsumerEnv)
    return (
        ExecutionStarter(env.STATE_MACHINE_ARN),
        EventBridgePublisher(env.EVENT_BUS_NAME, env.EVENT_SOURCE),
        QueueSender(env.REJECTED_QUEUE_URL),
    )


@cache
def _admission() -> tuple[Admission, JobRequeuer]:
    env = load(ConsumerEnv)
    store = DynamoPaceStore(env.STATE_TABLE_NAME)
    return Admission(store, copy_rate=env.COPY_RATE_PER_SECOND, copy_burst=env.COPY_BURST), JobRequeuer(
        env.JOB_QUEUE_URL
    )


def record_handler(record: SQSRecord) -> str:
    starter, publisher, dead_letters = _adapters()
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
    except JobRejected as exc:
        logger.warning("job rejected", extra={"message_id": ticket.message_id, "reason": exc.message})
        reject(
            record.body,
            exc,
            message_id=ticket.message_id,
            trigger_type=trigger_type_of(record.body, attributes),
            dead_letters=dead_letters,
            publisher=publisher,
            clock=clock,
        )
        metrics.add_metric(name="JobsRejected", unit=MetricUnit.Count, value=1)
        return "rejected"
    job_id = accepted.state.job_id
    arn, started = starter.start(job_id, accepted.state.dump())
    if started:
        logger.info(
            "job accepted",
            extra={"job_id": job_id, "execution_arn": arn, "trigger": accepted.trigger.type, **_backlog(ticket, clock)},
        )
        metrics.add_metric(name="JobsAccepted", unit=MetricUnit.Count, value=1)
        return "started"
    logger.info("duplicate job ignored: an execution with this job ID exists", extra={"job_id": job_id})
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
