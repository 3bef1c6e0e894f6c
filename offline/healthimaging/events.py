"""HealthImaging EventBridge events (source ``aws.medical-imaging``), as the devguide's event reference shows them.

The emulator hands each event to ``event_sink(detail_type, detail, resources)``; putting it on a bus (and adding
``source``, ``account``, ``time``, ``region``) is the sink's job. ``aws_event(...)`` builds the whole envelope for
sinks that want it.

Image set events: ``detail = {imagingVersion, isPrimary, imageSetVersion (string), datastoreId, imageSetId,
imageSetState, imageSetWorkflowStatus}`` (+ ``sourceImageSetArn`` on the destination's ``Image Set Copying``),
``resources = [image set ARN]``. The ID key is ``imageSetId`` as real events carry it; ``event_id_key="imagesetId"``
gives the devguide's spelling. Import job events: ``detail = {imagingVersion, datastoreId, jobId, jobName,
jobStatus, inputS3Uri, outputS3Uri}``, ``resources = [data store ARN]``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hicopy.contract import HEALTHIMAGING_SOURCE, IMPORT_JOB_COMPLETED, IMPORT_JOB_FAILED
from offline.healthimaging.store import EventEffect, ImageSet, ImportJob, Store, Version

IMAGING_VERSION = "1.0"

# HealthImaging's detail-types (devguide "event notifications"), by workflow status / job status. These are the
# service's events, not the orchestrator's (``hicopy.contract``), even where a name is spelled alike.
SERVICE_IMAGE_SET_EVENTS = {
    "CREATED": "Image Set Created",
    "COPYING": "Image Set Copying",
    "COPYING_WITH_READ_ONLY_ACCESS": "Image Set Copying With Read Only Access",
    "COPIED": "Image Set Copied",
    "COPY_FAILED": "Image Set Copy Failed",
    "UPDATING": "Image Set Updating",
    "UPDATED": "Image Set Updated",
    "UPDATE_FAILED": "Image Set Update Failed",
    "DELETING": "Image Set Deleting",
    "DELETED": "Image Set Deleted",
}

SERVICE_IMPORT_JOB_EVENTS = {
    "SUBMITTED": "Import Job Submitted",
    "IN_PROGRESS": "Import Job In Progress",
    "COMPLETED": IMPORT_JOB_COMPLETED,
    "FAILED": IMPORT_JOB_FAILED,
}


def image_set_event(
    store: Store, image_set: ImageSet, version: Version | None = None, *, source_arn: str | None = None
) -> EventEffect | None:
    """The event for the (latest) version's current workflow status, or None when that status has no event."""
    version = version or image_set.latest
    detail_type = SERVICE_IMAGE_SET_EVENTS.get(version.status)
    if detail_type is None:
        return None
    detail: dict[str, Any] = {
        "imagingVersion": IMAGING_VERSION,
        "isPrimary": version.is_primary,
        "imageSetVersion": str(version.version_id),
        "datastoreId": image_set.datastore_id,
        store.settings.event_id_key: image_set.image_set_id,
        "imageSetState": version.state,
        "imageSetWorkflowStatus": version.status,
    }
    if source_arn is not None:
        detail["sourceImageSetArn"] = source_arn
    return EventEffect(detail_type, detail, [store.image_set_arn(image_set.datastore_id, image_set.image_set_id)])


def emit_image_set_event(
    store: Store, image_set: ImageSet, version: Version | None = None, *, source_arn: str | None = None
) -> None:
    effect = image_set_event(store, image_set, version, source_arn=source_arn)
    if effect is not None:
        store.emit(effect)


def import_job_event(store: Store, job: ImportJob) -> EventEffect:
    detail = {
        "imagingVersion": IMAGING_VERSION,
        "datastoreId": job.datastore_id,
        "jobId": job.job_id,
        "jobName": job.job_name,
        "jobStatus": job.status,
        "inputS3Uri": job.input_s3_uri,
        "outputS3Uri": job.output_s3_uri,
    }
    return EventEffect(SERVICE_IMPORT_JOB_EVENTS[job.status], detail, [store.datastore_arn(job.datastore_id)])


def aws_event(
    detail_type: str, detail: dict[str, Any], resources: list[str], *, account: str, region: str, time: float
) -> dict[str, Any]:
    """The full EventBridge envelope, as a rule target would receive it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": HEALTHIMAGING_SOURCE,
        "account": account,
        "time": datetime.fromtimestamp(time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(resources),
        "detail": detail,
    }
