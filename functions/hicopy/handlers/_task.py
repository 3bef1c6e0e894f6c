"""Shared wrapper for the state machine's Lambda tasks: parse the task input, correlate logs with the job ID, run
one workflow function, return the next state. Exceptions propagate: their class name is the Step Functions error."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from hicopy.adapters.healthimaging import HealthImaging
from hicopy.adapters.state_table import DynamoPaceStore
from hicopy.domain.pacing import Pacer
from hicopy.domain.state import TaskInput, WorkflowState
from hicopy.observability import logger
from hicopy.settings import PaceEnv, load


def run_task(event: dict[str, Any], step: Callable[[TaskInput], WorkflowState]) -> dict[str, Any]:
    task = TaskInput.model_validate(event)
    logger.set_correlation_id(task.state.job.jobId)
    logger.append_keys(job_id=task.state.job.jobId, chunk=task.state.chunkIndex, execution_arn=task.executionArn)
    return step(task).dump()


@cache
def account_pacer() -> Pacer:
    """The account-wide pacer: Pace reserves slots with it, Submit and DeleteSource take their turn to call."""
    env = load(PaceEnv)
    return Pacer(DynamoPaceStore(env.STATE_TABLE_NAME), rate=env.COPY_RATE_PER_SECOND, burst=env.COPY_BURST)


@cache
def healthimaging() -> HealthImaging:
    """The HealthImaging adapter of the task functions that call it: one per container (its client is reused)."""
    return HealthImaging()
