"""Pace: reserve an account-wide CopyImageSet (or DeleteImageSet) slot before calling (GCRA on the state table)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.clock import get_clock, parse_iso
from hicopy.domain.pacing import pace
from hicopy.domain.state import TaskInput, WorkflowState
from hicopy.handlers._task import account_pacer, run_task
from hicopy.observability import logger, tracer
from hicopy.settings import PaceTaskEnv, load


def _pace(task: TaskInput) -> WorkflowState:
    started = parse_iso(task.executionStartTime) if task.executionStartTime else None
    timeout = float(load(PaceTaskEnv).EXECUTION_TIMEOUT_SECONDS)
    return pace(task.state, account_pacer(), get_clock(), started_at=started, timeout=timeout)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_task(event, _pace)
