"""Import planner: reacts to HealthImaging ``Import Job Completed`` / ``Import Job Failed``.

Policy ``none`` (the default) plans nothing; the post-import policies arrive with the post-import feature.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from hicopy.observability import logger, tracer
from hicopy.settings import PlannerEnv, load


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    env = load(PlannerEnv)
    detail = event.get("detail") or {}
    logger.info(
        "import event received",
        extra={
            "detail_type": event.get("detail-type"),
            "import_job_id": detail.get("jobId"),
            "policy": env.POST_IMPORT_POLICY,
        },
    )
    return {"planned": 0, "policy": env.POST_IMPORT_POLICY}
