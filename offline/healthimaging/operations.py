"""The API operations: parameter dict in (member names from the model), output dict out, or a ``ServiceError``.

Each handler runs under the emulator's lock with the store already advanced to ``ctx.now``.
Emulator choices where the AWS docs are silent are marked ``emulator choice``.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from offline.healthimaging import errors, search
from offline.healthimaging.copying import start_copy
from offline.healthimaging.dicom import Metadata, series_map
from offline.healthimaging.events import emit_image_set_event, import_job_event
from offline.healthimaging.importer import ImportPlan, new_job, run_import
from offline.healthimaging.store import ACTIVE, DELETED, Datastore, ImageSet, ImportJob, Store, Version

DEFAULT_PAGE = 50


@dataclass
class Context:
    store: Store
    now: float
    import_plans: deque[ImportPlan] = field(default_factory=deque)


Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]


# ------------------------------------------------------------------------------------------------------ helpers


def _page(items: list[Any], params: Mapping[str, Any], operation: str) -> tuple[list[Any], str | None]:
    """Opaque ``nextToken`` pagination over a list computed per call."""
    offset = 0
    token = params.get("nextToken")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            assert decoded["op"] == operation
            offset = int(decoded["offset"])
        except Exception as exc:
            raise errors.validation("Invalid nextToken") from exc
    size = int(params.get("maxResults") or DEFAULT_PAGE)
    chunk = items[offset : offset + size]
    if offset + size < len(items):
        raw = json.dumps({"op": operation, "offset": offset + size}).encode()
        return chunk, base64.urlsafe_b64encode(raw).decode()
    return chunk, None


def _version_of(image_set: ImageSet, version_id: str | None) -> Version:
    if version_id is None:
        return image_set.latest
    version = image_set.version(int(version_id))
    if version is None:
        raise errors.not_found(f"Version {version_id} of image set {image_set.image_set_id} does not exist")
    return version


def _datastore_properties(store: Store, datastore: Datastore) -> dict[str, Any]:
    return {
        "datastoreId": datastore.datastore_id,
        "datastoreName": datastore.name,
        "datastoreStatus": datastore.status,
        "kmsKeyArn": datastore.kms_key_arn,
        "losslessStorageFormat": datastore.lossless_storage_format,
        "datastoreArn": store.datastore_arn(datastore.datastore_id),
        "createdAt": datastore.created_at,
        "updatedAt": datastore.updated_at,
    }


def _job_properties(job: ImportJob, *, summary: bool = False) -> dict[str, Any]:
    properties = {
        "jobId": job.job_id,
        "jobName": job.job_name,
        "jobStatus": job.status,
        "datastoreId": job.datastore_id,
        "dataAccessRoleArn": job.data_access_role_arn,
        "endedAt": job.ended_at,
        "submittedAt": job.submitted_at,
        "message": job.message,
    }
    if not summary:
        properties["inputS3Uri"] = job.input_s3_uri
        properties["outputS3Uri"] = job.output_s3_uri
    return properties


def _version_properties(image_set: ImageSet, version: Version) -> dict[str, Any]:
    return {
        "imageSetId": image_set.image_set_id,
        "versionId": str(version.version_id),
        "imageSetState": version.state,
        "ImageSetWorkflowStatus": version.status,
        "createdAt": version.created_at,
        "updatedAt": version.updated_at,
        "deletedAt": version.deleted_at,
        "message": version.message,
        "overrides": {"forced": True} if version.forced else None,
        "isPrimary": version.is_primary,
    }


def _writable(image_set: ImageSet) -> None:
    if image_set.locked:
        raise errors.conflict(
            f"Image set {image_set.image_set_id} is LOCKED ({image_set.latest.status}); "
            "other write operations cannot be performed on a locked image set"
        )


# --------------------------------------------------------------------------------------------------- data stores


def create_datastore(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    token = params["clientToken"]
    for existing in store.datastores.values():
        if existing.client_token == token:
            return {"datastoreId": existing.datastore_id, "datastoreStatus": existing.status}
    datastore_id = store.new_id()
    datastore = Datastore(
        datastore_id=datastore_id,
        name=params.get("datastoreName") or f"datastore-{datastore_id[:8]}",
        status="CREATING",
        created_at=ctx.now,
        updated_at=ctx.now,
        kms_key_arn=params.get("kmsKeyArn"),
        lossless_storage_format=params.get("losslessStorageFormat"),
        tags=dict(params.get("tags") or {}),
        client_token=token,
    )
    store.datastores[datastore_id] = datastore

    def activate(due: float) -> None:
        datastore.status, datastore.updated_at = ACTIVE, due

    store.at(ctx.now, activate)  # emulator choice: ACTIVE from the next call on
    return {"datastoreId": datastore_id, "datastoreStatus": "CREATING"}


def get_datastore(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    datastore = ctx.store.datastore(params["datastoreId"])
    return {"datastoreProperties": _datastore_properties(ctx.store, datastore)}


def list_datastores(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params.get("datastoreStatus")
    items = [
        {
            k: v
            for k, v in _datastore_properties(ctx.store, d).items()
            if k not in ("kmsKeyArn", "losslessStorageFormat")
        }
        for d in sorted(ctx.store.datastores.values(), key=lambda d: (d.created_at, d.datastore_id))
        if wanted is None or d.status == wanted
    ]
    chunk, token = _page(items, params, "ListDatastores")
    return {"datastoreSummaries": chunk, "nextToken": token}


def delete_datastore(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    datastore = ctx.store.datastore(params["datastoreId"])
    if any(not s.deleted for s in datastore.image_sets.values()):
        raise errors.conflict("Delete all image sets of the datastore before deleting it")
    datastore.status, datastore.updated_at = "DELETING", ctx.now

    def finish(due: float) -> None:
        datastore.status, datastore.updated_at = DELETED, due

    ctx.store.at(ctx.now, finish)
    return {"datastoreId": datastore.datastore_id, "datastoreStatus": "DELETING"}


# ---------------------------------------------------------------------------------------------------- image sets


def get_image_set(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    # Emulator choice: a deleted image set still answers GetImageSet (state DELETED, deletedAt); other reads 404.
    image_set = store.image_set(params["datastoreId"], params["imageSetId"], allow_deleted=True)
    version = _version_of(image_set, params.get("versionId"))
    return {
        "datastoreId": image_set.datastore_id,
        "imageSetId": image_set.image_set_id,
        "versionId": str(version.version_id),
        "imageSetState": version.state,
        "imageSetWorkflowStatus": version.status,
        "createdAt": version.created_at,
        "updatedAt": version.updated_at,
        "deletedAt": version.deleted_at,
        "message": version.message,
        "imageSetArn": store.image_set_arn(image_set.datastore_id, image_set.image_set_id),
        "overrides": {"forced": True} if version.forced else None,
        "isPrimary": version.is_primary,
    }


def get_image_set_metadata(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    image_set = ctx.store.image_set(params["datastoreId"], params["imageSetId"])
    version = _version_of(image_set, params.get("versionId"))
    blob = gzip.compress(json.dumps(version.metadata).encode(), mtime=0)
    return {"imageSetMetadataBlob": blob, "contentType": "application/json", "contentEncoding": "gzip"}


def list_image_set_versions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    image_set = ctx.store.image_set(params["datastoreId"], params["imageSetId"], allow_deleted=True)
    # Emulator choice: newest version first.
    items = [_version_properties(image_set, v) for v in reversed(image_set.versions)]
    chunk, token = _page(items, params, "ListImageSetVersions")
    return {"imageSetPropertiesList": chunk, "nextToken": token}


def delete_image_set(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    image_set = store.image_set(params["datastoreId"], params["imageSetId"])
    _writable(image_set)
    store.hold(image_set, "delete", "DELETING", ctx.now)
    emit_image_set_event(store, image_set)

    def finish(due: float) -> None:
        latest = image_set.latest
        latest.state, latest.status, latest.updated_at, latest.deleted_at = DELETED, DELETED, due, due
        image_set.hold = None
        emit_image_set_event(store, image_set)

    store.at(ctx.now + store.settings.delete_duration, finish)
    return {
        "datastoreId": image_set.datastore_id,
        "imageSetId": image_set.image_set_id,
        "imageSetState": image_set.latest.state,
        "imageSetWorkflowStatus": image_set.latest.status,
    }


def copy_image_set(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return start_copy(
        ctx.store,
        ctx.now,
        params["datastoreId"],
        params["sourceImageSetId"],
        params["copyImageSetInformation"],
        force=bool(params.get("force")),
        promote=bool(params.get("promoteToPrimary")),
    )


def _attributes(raw: bytes, member: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.validation(f"{member} is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise errors.validation(f"{member} must be a JSON object")
    return parsed


def _apply_updates(metadata: Metadata, updates: Mapping[str, Any], *, remove: bool) -> None:
    """Apply an ``updatableAttributes``/``removableAttributes`` document (same hierarchy as the metadata)."""
    for level in ("Patient", "Study"):
        elements = (updates.get(level) or {}).get("DICOM")
        if isinstance(elements, dict):
            target = metadata.setdefault(level, {}).setdefault("DICOM", {})
            for key, value in elements.items():
                if remove:
                    target.pop(key, None)
                else:
                    target[key] = value
    series_updates = (updates.get("Study") or {}).get("Series") or {}
    series = series_map(metadata)
    for series_uid, change in series_updates.items():
        if series_uid not in series or not isinstance(change, dict):
            raise errors.validation(f"Series {series_uid} does not exist in the image set")
        if remove and not change:
            del series[series_uid]
            continue
        for key, value in (change.get("DICOM") or {}).items():
            if remove:
                series[series_uid]["DICOM"].pop(key, None)
            else:
                series[series_uid].setdefault("DICOM", {})[key] = value
        instances = series[series_uid].setdefault("Instances", {})
        for sop_uid, instance_change in (change.get("Instances") or {}).items():
            if sop_uid not in instances:
                raise errors.validation(f"SOP Instance {sop_uid} does not exist in the image set")
            if remove and not instance_change:
                del instances[sop_uid]
                continue
            for key, value in ((instance_change or {}).get("DICOM") or {}).items():
                if remove:
                    instances[sop_uid]["DICOM"].pop(key, None)
                else:
                    instances[sop_uid].setdefault("DICOM", {})[key] = value


def _touches_patient_or_series(updates: Mapping[str, Any]) -> bool:
    if (updates.get("Patient") or {}).get("DICOM"):
        return True
    return any(
        isinstance(c, dict) and c.get("DICOM") for c in ((updates.get("Study") or {}).get("Series") or {}).values()
    )


def update_image_set_metadata(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Minimal UpdateImageSetMetadata: DICOMUpdates (updatable/removable attributes) or revertToVersionId."""
    store = ctx.store
    image_set = store.image_set(params["datastoreId"], params["imageSetId"])
    if int(params["latestVersionId"]) != image_set.latest.version_id:
        raise errors.stale_version(
            store.settings.stale_version_error,
            f"latestVersionId {params['latestVersionId']} is not the latest version {image_set.latest.version_id}",
        )
    _writable(image_set)
    updates = params["updateImageSetMetadataUpdates"]
    metadata = copy.deepcopy(image_set.latest.metadata)
    if updates.get("revertToVersionId") is not None:
        metadata = copy.deepcopy(_version_of(image_set, updates["revertToVersionId"]).metadata)
    else:
        dicom = updates.get("DICOMUpdates") or {}
        documents = [
            (_attributes(dicom[name], name), name == "removableAttributes")
            for name in ("updatableAttributes", "removableAttributes")
            if dicom.get(name) is not None
        ]
        if not documents:
            raise errors.validation("DICOMUpdates needs updatableAttributes or removableAttributes")
        if image_set.latest.is_primary and any(_touches_patient_or_series(doc) for doc, _ in documents):
            raise errors.validation(
                "The Patient and Series level metadata elements can not be updated for primary image sets"
            )
        for document, remove in documents:
            _apply_updates(metadata, document, remove=remove)
    version = store.new_version(
        image_set, metadata, now=ctx.now, state="LOCKED", status="UPDATING", forced=bool(params.get("force"))
    )
    emit_image_set_event(store, image_set, version)

    def finish(due: float) -> None:
        version.state, version.status, version.updated_at = ACTIVE, "UPDATED", due
        emit_image_set_event(store, image_set, version)

    store.at(ctx.now + store.settings.update_duration, finish)
    return {
        "datastoreId": image_set.datastore_id,
        "imageSetId": image_set.image_set_id,
        "latestVersionId": str(version.version_id),
        "imageSetState": version.state,
        "imageSetWorkflowStatus": version.status,
        "createdAt": image_set.created_at,
        "updatedAt": version.updated_at,
    }


# ---------------------------------------------------------------------------------------------------------- search


def search_image_sets(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    datastore = ctx.store.datastore(params["datastoreId"])
    criteria = params.get("searchCriteria") or {}
    items = [search.summary(s) for s in search.matching(datastore, criteria)]
    chunk, token = _page(items, params, "SearchImageSets")
    return {"imageSetsMetadataSummaries": chunk, "sort": criteria.get("sort"), "nextToken": token}


# ---------------------------------------------------------------------------------------------------- import jobs


def start_dicom_import_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    store = ctx.store
    store.active_datastore(params["datastoreId"])
    for job in store.jobs.values():
        if job.client_token == params["clientToken"] and job.datastore_id == params["datastoreId"]:
            return {
                "datastoreId": job.datastore_id,
                "jobId": job.job_id,
                "jobStatus": job.status,
                "submittedAt": job.submitted_at,
            }
    job = new_job(
        store,
        ctx.now,
        params["datastoreId"],
        input_s3_uri=params["inputS3Uri"],
        output_s3_uri=params["outputS3Uri"],
        job_name=params.get("jobName"),
        data_access_role_arn=params["dataAccessRoleArn"],
        client_token=params["clientToken"],
    )
    store.emit(import_job_event(store, job))
    plan = ctx.import_plans.popleft() if ctx.import_plans else ImportPlan()

    def run(due: float) -> None:
        try:
            run_import(store, job, plan, due)
        except (errors.ServiceError, ValueError) as exc:
            job.status, job.ended_at = "FAILED", due
            job.message = errors.sanitize_message(str(exc))
            store.emit(import_job_event(store, job))

    store.at(ctx.now + store.settings.import_duration, run)
    return {
        "datastoreId": job.datastore_id,
        "jobId": job.job_id,
        "jobStatus": job.status,
        "submittedAt": job.submitted_at,
    }


def get_dicom_import_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    job = ctx.store.jobs.get(params["jobId"])
    if job is None or job.datastore_id != params["datastoreId"]:
        raise errors.not_found(f"Import job {params['jobId']} does not exist in datastore {params['datastoreId']}")
    return {"jobProperties": _job_properties(job)}


def list_dicom_import_jobs(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.store.datastore(params["datastoreId"])
    wanted = params.get("jobStatus")
    jobs = sorted(
        (
            j
            for j in ctx.store.jobs.values()
            if j.datastore_id == params["datastoreId"] and (wanted is None or j.status == wanted)
        ),
        key=lambda j: (j.submitted_at, j.job_id),
        reverse=True,
    )
    chunk, token = _page([_job_properties(j, summary=True) for j in jobs], params, "ListDICOMImportJobs")
    return {"jobSummaries": chunk, "nextToken": token}


# ------------------------------------------------------------------------------------------------------------- tags


def _tagged(ctx: Context, arn: str) -> Datastore:
    for datastore in ctx.store.datastores.values():
        if ctx.store.datastore_arn(datastore.datastore_id) == arn:
            return datastore
    raise errors.not_found(f"Resource {arn} does not exist (the emulator tags data stores only)")


def tag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _tagged(ctx, params["resourceArn"]).tags.update(params["tags"])
    return {}


def untag_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    tags = _tagged(ctx, params["resourceArn"]).tags
    for key in params["tagKeys"]:
        tags.pop(key, None)
    return {}


def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"tags": dict(_tagged(ctx, params["resourceArn"]).tags)}


OPERATIONS: dict[str, Handler] = {
    "CreateDatastore": create_datastore,
    "GetDatastore": get_datastore,
    "ListDatastores": list_datastores,
    "DeleteDatastore": delete_datastore,
    "GetImageSet": get_image_set,
    "GetImageSetMetadata": get_image_set_metadata,
    "ListImageSetVersions": list_image_set_versions,
    "SearchImageSets": search_image_sets,
    "CopyImageSet": copy_image_set,
    "DeleteImageSet": delete_image_set,
    "UpdateImageSetMetadata": update_image_set_metadata,
    "StartDICOMImportJob": start_dicom_import_job,
    "GetDICOMImportJob": get_dicom_import_job,
    "ListDICOMImportJobs": list_dicom_import_jobs,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
