"""Import planner: on HealthImaging ``Import Job Completed``/``Import Job Failed`` for a configured data store, read
the import's output, report failed files, and enqueue copy jobs according to the post-import policy."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.adapters.aws import EventBridgePublisher, QueueSender, S3Reader
from hicopy.adapters.healthimaging import HealthImaging, PlannerImaging
from hicopy.adapters.state_table import ImportMarker, PlanRecords
from hicopy.clock import get_clock
from hicopy.domain.imports import PlannerSettings, handle_import_event
from hicopy.observability import logger, metrics, tracer
from hicopy.settings import PlannerEnv, load


@cache
def _wiring() -> tuple[PlannerSettings, dict[str, Any]]:
    env = load(PlannerEnv)
    imaging = HealthImaging()
    settings = PlannerSettings(
        allowed_datastores=env.datastore_ids,
        policy=env.POST_IMPORT_POLICY,
        force=env.CONSOLIDATE_FORCE,
        delete_after=env.DELETE_AFTER_CONSOLIDATE,
        manifest_wait_seconds=env.MANIFEST_WAIT_SECONDS,
        report_details=env.IMPORT_REPORT_DETAILS,
    )
    ports = {
        "jobs_api": imaging,
        "output": S3Reader(),
        "imaging": PlannerImaging(imaging),
        "queue": QueueSender(env.JOB_QUEUE_URL),
        "publisher": EventBridgePublisher(env.EVENT_BUS_NAME, env.EVENT_SOURCE),
        "marker": ImportMarker(env.STATE_TABLE_NAME),
        "plans": PlanRecords(env.STATE_TABLE_NAME),
    }
    return settings, ports


@logger.inject_lambda_context(correlation_id_path="detail.jobId")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, ports = _wiring()
    outcome = handle_import_event(event, settings, clock=get_clock(), **ports)
    logger.info(
        "import planned",
        extra={
            "import_job_id": outcome.import_job_id,
            "duplicate": outcome.duplicate,
            "jobs": outcome.planned,
            "failed_files": outcome.failures_reported,
        },
    )
    metrics.add_metric(name="ImportJobsPlanned", unit=MetricUnit.Count, value=len(outcome.planned))
    return {
        "importJobId": outcome.import_job_id,
        "duplicate": outcome.duplicate,
        "planned": outcome.planned,
        "failedFiles": outcome.failures_reported,
    }
