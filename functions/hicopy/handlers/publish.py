"""Publish: the job's one terminal event (success, or failure with the caught error's reason)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import SingleSendPublisher
from hicopy.adapters.state_table import DeliveryReceipts, PublishedMarker
from hicopy.clock import get_clock
from hicopy.contract import SUCCEEDED
from hicopy.domain.outcome import publish_outcome
from hicopy.domain.state import TaskInput, WorkflowState
from hicopy.handlers._task import run_task
from hicopy.observability import logger, metrics, tracer
from hicopy.settings import PublishEnv, load


@cache
def _adapters() -> tuple[SingleSendPublisher, PublishedMarker, DeliveryReceipts]:
    env = load(PublishEnv)
    return (
        SingleSendPublisher(env.EVENT_BUS_NAME, env.EVENT_SOURCE),
        PublishedMarker(env.STATE_TABLE_NAME),
        DeliveryReceipts(env.STATE_TABLE_NAME),
    )


def _publish(task: TaskInput) -> WorkflowState:
    publisher, marker, receipts = _adapters()
    window = load(PublishEnv).RECEIPT_WINDOW_SECONDS
    detail_type = publish_outcome(task.state, publisher, get_clock(), task.executionArn, marker, receipts, window)
    if detail_type is None:
        logger.warning("terminal event already published for this job (marker or receipt); not publishing another")
        return task.state
    metrics.add_metric(
        name="JobsSucceeded" if detail_type == SUCCEEDED else "JobsFailed", unit=MetricUnit.Count, value=1
    )
    copy_seconds = task.state.copy_seconds() if detail_type == SUCCEEDED else None
    if copy_seconds is not None:
        metrics.add_metric(name="CopyDurationSeconds", unit=MetricUnit.Seconds, value=copy_seconds)
    checks = sum(c.statusChecks for c in task.state.completed)
    metrics.add_metric(name="StatusChecks", unit=MetricUnit.Count, value=checks)
    logger.info(
        "job finished", extra={"outcome": detail_type, "error": task.state.error.Error if task.state.error else None}
    )
    return task.state


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(event, _publish)
