"""Everything the CLI takes from the orchestrator's own code, in one place.

The CLI validates, plans and explains jobs with the very code the Lambda functions run (the consumer's job model,
Prepare's planning, the post-import planner, the error taxonomy and the settings models), so that what it says is
what the stack will do. When that code moves, only the imports below change.
"""

from __future__ import annotations

from hicopy.adapters.aws import BODY_ENCODING_ATTRIBUTE
from hicopy.adapters.healthimaging import HealthImaging, PlannerImaging
from hicopy.clock import SystemClock, iso
from hicopy.contract import DATASTORE_ID_PATTERN, POLICIES, Policy
from hicopy.domain.import_output import ImportedImageSet, ImportResult
from hicopy.domain.imports import PlannedJob, plan_jobs
from hicopy.domain.intake import TRIGGER_ATTRIBUTE, accept, loads_strict
from hicopy.domain.job import CopyJob, parse_job
from hicopy.domain.outcome import describe_error
from hicopy.domain.planning import prepare
from hicopy.domain.selection import Chunk, CopyPlan, index_metadata, plan_chunks
from hicopy.domain.state import WorkflowState
from hicopy.errors import Handling, JobRejected, OrchestratorError
from hicopy.settings import DatastoreEnv, PaceEnv, PlannerEnv, PrepareEnv

# The attributes the consumer puts on a rejected message in the job dead-letter queue (``intake.reject``).
REJECTION_CODE_ATTRIBUTE = "rejectionCode"
REJECTION_REASON_ATTRIBUTE = "rejectionReason"

__all__ = [
    "BODY_ENCODING_ATTRIBUTE",
    "DATASTORE_ID_PATTERN",
    "POLICIES",
    "REJECTION_CODE_ATTRIBUTE",
    "REJECTION_REASON_ATTRIBUTE",
    "TRIGGER_ATTRIBUTE",
    "Chunk",
    "CopyJob",
    "CopyPlan",
    "DatastoreEnv",
    "Handling",
    "HealthImaging",
    "ImportResult",
    "ImportedImageSet",
    "JobRejected",
    "OrchestratorError",
    "PaceEnv",
    "PlannedJob",
    "PlannerEnv",
    "PlannerImaging",
    "Policy",
    "PrepareEnv",
    "SystemClock",
    "WorkflowState",
    "accept",
    "describe_error",
    "index_metadata",
    "iso",
    "loads_strict",
    "parse_job",
    "plan_chunks",
    "plan_jobs",
    "prepare",
]
