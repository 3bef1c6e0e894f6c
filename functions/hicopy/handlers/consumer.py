"""Job queue consumer: one Step Functions execution per valid job; invalid jobs are rejected (event + DLQ), never
retried. Partial batch responses: only messages that hit a transient error come back to the queue.

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

from hicopy.adapters.aws import (
    EventBridgePublisher,
    ExecutionStarter,
    MessageVisibility,
    QueueSender,
    RejectionMarker,
)
from hicopy.clock import get_clock
from hicopy.domain.backoff import redelivery_delay
from hicopy.domain.intake import accept, admit, reject, trigger_type_of
from hicopy.errors import JobRejected, OrchestratorError
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
def _rejection_adapters() -> tuple[RejectionMarker, MessageVisibility]:
    env = load(ConsumerEnv)
    return RejectionMarker(env.STATE_TABLE_NAME), MessageVisibility(env.JOB_QUEUE_URL)


def _reject(record: SQSRecord, body: str, exc: JobRejected, attributes: dict[str, str]) -> None:
    """Reject once (DLQ copy, then event). A rejection that fails part-way comes back after its redelivery delay."""
    _, publisher, dead_letters = _adapters()
    marker, visibility = _rejection_adapters()
    try:
        detail = reject(
            body,
            exc,
            message_id=record.message_id,
            trigger_type=trigger_type_of(body, attributes),
            dead_letters=dead_letters,
            publisher=publisher,
            clock=get_clock(),
            marker=marker,
        )
    except OrchestratorError as failure:
        receives = int(record.attributes.approximate_receive_count or 1)
        delay = redelivery_delay(receives)
        logger.warning(
            "rejection not completed; the message comes back later",
            extra={"message_id": record.message_id, "error": failure.code, "receive": receives, "delay": delay},
        )
        try:
            visibility.delay(record.receipt_handle, delay)
        except OrchestratorError as also:  # the queue's own visibility timeout brings it back sooner
            logger.warning("could not delay the message", extra={"message_id": record.message_id, "error": also.code})
        raise
    if detail is None:
        logger.info("rejection already published for this message", extra={"message_id": record.message_id})


def record_handler(record: SQSRecord) -> str:
    starter, _, _ = _adapters()
    # Read the raw record: a Binary attribute has no stringValue, and must not break the message.
    raw = record.raw_event.get("messageAttributes") or {}
    attributes = {k: str(v.get("stringValue") or "") for k, v in raw.items() if isinstance(v, dict)}
    clock = get_clock()
    try:
        accepted = accept(record.body, message_id=record.message_id, attributes=attributes, clock=clock)
        admission = admit(accepted, starter)
    except JobRejected as exc:
        logger.warning("job rejected", extra={"message_id": record.message_id, "code": exc.code, "reason": exc.message})
        _reject(record, record.body, exc, attributes)
        metrics.add_metric(name="JobsRejected", unit=MetricUnit.Count, value=1)
        return "rejected"
    job_id = accepted.state.job_id
    if admission.outcome == "started":
        logger.info(
            "job accepted",
            extra={"job_id": job_id, "execution_arn": admission.execution_arn, "trigger": accepted.trigger.type},
        )
        metrics.add_metric(name="JobsAccepted", unit=MetricUnit.Count, value=1)
        return "started"
    logger.info("duplicate job ignored: an execution runs this same job", extra={"job_id": job_id})
    metrics.add_metric(name="DuplicateJobs", unit=MetricUnit.Count, value=1)
    return "duplicate"


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=BatchProcessor(event_type=EventType.SQS), context=context
    )
    return dict(response)
