"""ExecutionEnded: the safety net for an execution that ended FAILED, TIMED_OUT or ABORTED without its terminal
event. Invoked by the rule on Step Functions' own ``Step Functions Execution Status Change`` events (default bus)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import ExecutionReader, SingleSendPublisher
from hicopy.adapters.state_table import DeliveryReceipts, PublishedMarker
from hicopy.clock import get_clock
from hicopy.domain.outcome import ended_execution, publish_for_ended_execution
from hicopy.observability import logger, metrics, tracer
from hicopy.settings import PublishEnv, load


@cache
def _adapters() -> tuple[ExecutionReader, SingleSendPublisher, PublishedMarker, DeliveryReceipts]:
    env = load(PublishEnv)
    return (
        ExecutionReader(),
        SingleSendPublisher(env.EVENT_BUS_NAME, env.EVENT_SOURCE),
        PublishedMarker(env.STATE_TABLE_NAME),
        DeliveryReceipts(env.STATE_TABLE_NAME),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reader, publisher, marker, receipts = _adapters()
    facts = ended_execution(event["detail"])
    window = load(PublishEnv).RECEIPT_WINDOW_SECONDS
    detail_type = publish_for_ended_execution(facts, reader, publisher, get_clock(), marker, receipts, window)
    if detail_type is not None:
        logger.warning(
            "execution ended without its terminal event; the safety net published it",
            extra={"status": facts.status, "outcome": detail_type},
        )
        metrics.add_metric(name="SafetyNetEvents", unit=MetricUnit.Count, value=1)
    return {"status": facts.status, "published": detail_type}
