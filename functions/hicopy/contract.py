"""Names and patterns that the whole product shares: one home for each.

The event detail-types, the AWS identifier patterns and the post-import policy names are part of the user-facing
contract (README, ``schemas/``). The Lambda code, the CDK app, the local runtime and the tests import them from here;
nothing else spells them out.
"""

from __future__ import annotations

from typing import Literal, get_args

# --- identifiers ------------------------------------------------------------------------------------------------
ID32 = r"[0-9a-z]{32}"  # a HealthImaging data store or image set ID
DATASTORE_ID_PATTERN = rf"^{ID32}$"
IMAGE_SET_ID_PATTERN = rf"^{ID32}$"
# A DICOM UID as real archives and HealthImaging hold it: dot-separated runs of ASCII digits, at most 64 characters.
# Leading zeros in a component ("1.2.840.113619.2.320.01") break PS3.5 9.1 but exist in real archives, and the
# service's own pattern is [0-9.]+ (botocore model: DICOMSeriesInstanceUID): such UIDs are accepted. Rejected: what
# cannot be a UID (empty components, anything but digits and dots, over DICOM's 64 characters, PS3.5 9.1).
DICOM_UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
DICOM_UID_MAX_LENGTH = 64

# --- event detail-types -----------------------------------------------------------------------------------------
COPY_REQUESTED = "Copy Requested"  # in: a copy job put on the custom bus
SUCCEEDED = "Copy Job Succeeded"  # out: a job's terminal event, success
FAILED = "Copy Job Failed"  # out: a job's terminal event, failure
REJECTED = "Copy Job Rejected"  # out: a message that is not a valid job
IMPORT_PLANNED = "Import Job Planned"  # out: what the post-import policy queued
IMPORT_FAILURES = "Import Job Failures"  # out: the instances an import could not store
TERMINAL_DETAIL_TYPES = (SUCCEEDED, FAILED, REJECTED)
IMPORT_DETAIL_TYPES = (IMPORT_PLANNED, IMPORT_FAILURES)
OUTCOME_STATUS = {SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", REJECTED: "REJECTED"}

# --- AWS HealthImaging's own events on the default bus (the service's names, not ours) -------------------------
# The import planner listens to the import events; the copy waker (AwaitCopy's early wake-up) to the copy events.
# None of our detail-types equals one of HealthImaging's (a test checks it): ours were renamed in schemaVersion 2.0.
HEALTHIMAGING_SOURCE = "aws.medical-imaging"
IMPORT_JOB_COMPLETED = "Import Job Completed"
IMPORT_JOB_FAILED = "Import Job Failed"
HEALTHIMAGING_IMPORT_DETAIL_TYPES = (IMPORT_JOB_COMPLETED, IMPORT_JOB_FAILED)  # what the import planner is sent
IMAGE_SET_COPIED = "Image Set Copied"  # the destination version of a copy is COPIED
IMAGE_SET_COPY_FAILED = "Image Set Copy Failed"  # the destination version of a copy is COPY_FAILED
COPY_RESULT_DETAIL_TYPES = (IMAGE_SET_COPIED, IMAGE_SET_COPY_FAILED)  # what the copy waker is sent
# The image set ID's key in those events' detail: ``imageSetId`` in real events, ``imagesetId`` in the devguide.
IMAGE_SET_ID_KEYS = ("imageSetId", "imagesetId")

# --- the copy state machine's publisher states (their input is the outcome the execution meant to publish) ----------
PUBLISH_RESULT_STATE = "PublishResult"
PUBLISH_FAILURE_STATE = "PublishFailure"
PUBLISH_STATES = (PUBLISH_RESULT_STATE, PUBLISH_FAILURE_STATE)
# Step Functions' own events on the default bus (in: the safety net)
STATES_SOURCE = "aws.states"
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
ENDED_WITHOUT_SUCCESS = ("FAILED", "TIMED_OUT", "ABORTED")

# --- observability ----------------------------------------------------------------------------------------------
SERVICE_NAME = "hicopy"  # Powertools service name (log key ``service``)
METRICS_NAMESPACE = "HealthImagingCopy"  # CloudWatch namespace of the custom metrics

# --- post-import policy -----------------------------------------------------------------------------------------
Policy = Literal["none", "consolidate", "promote"]
POLICIES: tuple[Policy, ...] = get_args(Policy)
