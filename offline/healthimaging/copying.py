"""CopyImageSet: synchronous checks at call time, then an asynchronous COPIED / COPY_FAILED after the copy duration.

At call time (errors raised from the API call):
- data store / source / destination must exist (``ResourceNotFoundException``);
- ``latestVersionId`` of the source (and of the destination when given) must be the current latest
  (``Settings.stale_version_error``: by default ``ResourceNotFoundException`` "Requested version(s) of ImageSet(s) is
  not the latest.", see ``errors.stale_version``), and neither may be LOCKED (``ConflictException``);
- ``copiableAttributes`` must be a JSON object (``ValidationException``);
- the ImageFrames to copy must not exceed the per-copy quota (``Settings.frame_quota_error``, default
  ``ValidationException``; emulator choice, the docs name no error) and the data store must have fewer than
  ``max_concurrent_copies`` copies running (``ServiceQuotaExceededException``);
- ``promoteToPrimary`` with a destination, or a primary source, is refused (``ValidationException``; emulator choice).

On acceptance the destination gets a new version LOCKED/COPYING (a new image set when no destination is given), the
source's latest version goes LOCKED/COPYING_WITH_READ_ONLY_ACCESS. After the copy duration both become ACTIVE:
destination COPIED with the copied instances in its metadata, or COPY_FAILED with ``message`` when:
``copiableAttributes`` names a series/instance absent from the source (e.g. the SDK examples' literal ``imageSetId``
key), Patient/Study/Series metadata of source and destination disagree and ``force`` is false, SOP Instance UIDs
would collide in the destination, or ``fail_next_copy`` was armed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from offline.healthimaging import errors
from offline.healthimaging.dicom import (
    all_sop_uids,
    empty_like,
    frame_count,
    level_conflict,
    merge_into,
    select,
    series_map,
    study_uid_of,
)
from offline.healthimaging.events import emit_image_set_event
from offline.healthimaging.store import ACTIVE, Hold, ImageSet, PendingCopy, Store, Version

COPYING, READ_ONLY, COPIED, COPY_FAILED = "COPYING", "COPYING_WITH_READ_ONLY_ACCESS", "COPIED", "COPY_FAILED"
SUPPORTED_SCHEMA_VERSIONS = ("1.1", 1.1)


def parse_copiable_attributes(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.validation(f"copiableAttributes is not valid JSON: {exc.msg}") from exc
    if not isinstance(parsed, dict):
        raise errors.validation("copiableAttributes must be a JSON object")
    return parsed


def resolve_selection(source: Mapping[str, Any], parsed: Mapping[str, Any]) -> tuple[dict[str, list[str]], str | None]:
    """Series UID -> SOP UIDs selected by ``copiableAttributes``, and the COPY_FAILED message if it is unusable."""
    selection: dict[str, list[str]] = {}
    if "SchemaVersion" in parsed and parsed["SchemaVersion"] not in SUPPORTED_SCHEMA_VERSIONS:
        return (
            selection,
            f"INVALID_REQUEST:  Unsupported SchemaVersion {parsed['SchemaVersion']} in copiableAttributes.",
        )
    study = parsed.get("Study")
    series = study.get("Series") if isinstance(study, dict) else None
    if not isinstance(series, dict) or not series:
        return selection, "INVALID_REQUEST:  copiableAttributes must select Study.Series of the SourceImageSet."
    available = series_map(source)
    for series_uid, wanted in series.items():
        if series_uid not in available:
            return selection, (
                f"INVALID_REQUEST:  Series {series_uid} in copiableAttributes does not exist in SourceImageSet. "
                "Series keys must be Series Instance UIDs."
            )
        instances = wanted.get("Instances") if isinstance(wanted, dict) else None
        if not isinstance(instances, dict) or not instances:
            return selection, f"INVALID_REQUEST:  No Instances selected for Series {series_uid} in copiableAttributes."
        present = available[series_uid].get("Instances", {})
        for sop_uid in instances:
            if sop_uid not in present:
                return selection, (
                    f"INVALID_REQUEST:  SOP Instance {sop_uid} of Series {series_uid} does not exist in SourceImageSet."
                )
        selection[series_uid] = list(instances)
    return selection, None


def image_set_properties(store: Store, image_set: ImageSet, version: Version) -> dict[str, Any]:
    return {
        "imageSetId": image_set.image_set_id,
        "latestVersionId": str(version.version_id),
        "imageSetState": version.state,
        "imageSetWorkflowStatus": version.status,
        "createdAt": image_set.created_at,
        "updatedAt": version.updated_at,
        "imageSetArn": store.image_set_arn(image_set.datastore_id, image_set.image_set_id),
    }


def _check_version(store: Store, image_set: ImageSet, given: str, role: str) -> None:
    if int(given) != image_set.latest.version_id:
        raise errors.stale_version(
            store.settings.stale_version_error,
            f"latestVersionId {given} of the {role} image set {image_set.image_set_id} is not its latest version "
            f"{image_set.latest.version_id}",
        )


def _check_unlocked(image_set: ImageSet, role: str) -> None:
    if image_set.locked:
        raise errors.conflict(
            f"The {role} image set {image_set.image_set_id} is LOCKED ({image_set.latest.status}); "
            "other write operations cannot be performed on a locked image set"
        )


def _duration(store: Store, source_id: str, destination_id: str) -> float:
    settings = store.settings
    if settings.copy_durations:
        return float(settings.copy_durations.popleft())
    if callable(settings.copy_duration):
        return float(settings.copy_duration(source_id, destination_id))
    return float(settings.copy_duration)


def start_copy(
    store: Store,
    now: float,
    datastore_id: str,
    source_id: str,
    information: Mapping[str, Any],
    *,
    force: bool,
    promote: bool,
) -> dict[str, Any]:
    settings = store.settings
    datastore = store.active_datastore(datastore_id)
    source = store.image_set(datastore_id, source_id)
    source_info = information["sourceImageSet"]
    destination_info = information.get("destinationImageSet")
    if promote and destination_info:
        raise errors.validation("promoteToPrimary cannot be combined with destinationImageSet")
    destination = store.image_set(datastore_id, destination_info["imageSetId"]) if destination_info else None
    if destination is source:
        raise errors.validation("The source and destination image sets must differ")
    copiable_text = (source_info.get("DICOMCopies") or {}).get("copiableAttributes")
    parsed = parse_copiable_attributes(copiable_text) if copiable_text is not None else None

    _check_version(store, source, source_info["latestVersionId"], "source")
    if destination is not None and destination_info is not None:
        _check_version(store, destination, destination_info["latestVersionId"], "destination")
    _check_unlocked(source, "source")
    if destination is not None:
        _check_unlocked(destination, "destination")
    if promote and source.latest.is_primary:
        raise errors.validation(f"Image set {source_id} is already a primary image set")

    source_metadata = source.latest.metadata
    selection: dict[str, list[str]] | None = None
    failure: str | None = None
    if parsed is not None:
        selection, failure = resolve_selection(source_metadata, parsed)
    frames = frame_count(source_metadata, selection)
    if frames > settings.max_frames_per_copy:
        raise errors.ServiceError(
            settings.frame_quota_error,
            f"The copy selects {frames} ImageFrames; the quota is {settings.max_frames_per_copy} per CopyImageSet",
        )
    running = sum(1 for p in store.pending_copies.values() if p.datastore_id == datastore_id)
    if running >= settings.max_concurrent_copies:
        raise errors.quota(
            f"Datastore {datastore_id} already runs {running} CopyImageSet requests "
            f"(quota {settings.max_concurrent_copies})"
        )
    payload = select(source_metadata, selection)

    if destination is None and promote:
        # Emulator choice: promoting into a Study/Series that already has a primary image set merges into it.
        study_uid = study_uid_of(payload)
        for series_uid in series_map(payload):
            existing = store.primary_for(datastore_id, study_uid, series_uid)
            if existing is not None:
                _check_unlocked(existing, "primary")
                destination = existing
                break

    if failure is None and settings.fail_next_copy:
        failure = settings.fail_next_copy.popleft()
    if failure is None and destination is not None:
        conflict_level = None if force else level_conflict(payload, destination.latest.metadata, series_map(payload))
        if conflict_level is not None:
            failure = f"INVALID_REQUEST:  {conflict_level} of SourceImageSet and DestinationImageSet don't match."
        elif all_sop_uids(payload) & all_sop_uids(destination.latest.metadata):
            failure = "INVALID_REQUEST:  SOP Instance UIDs of SourceImageSet already exist in DestinationImageSet."

    new_destination = destination is None
    if destination is None:
        destination = store.new_image_set(
            datastore_id,
            empty_like(source_metadata),
            now=now,
            is_primary=promote,
            state="LOCKED",
            status=COPYING,
            version_id=settings.first_copy_version,
            forced=force,
        )
        version = destination.latest
    else:
        version = store.new_version(
            destination, destination.latest.metadata, now=now, state="LOCKED", status=COPYING, forced=force
        )
    destination.hold = Hold("copy-destination", ACTIVE, COPYING)
    store.hold(source, "copy-source", READ_ONLY, now)

    pending = PendingCopy(
        datastore_id=datastore.datastore_id,
        source_id=source.image_set_id,
        destination_id=destination.image_set_id,
        destination_version=version.version_id,
        due=now + max(0.0, _duration(store, source.image_set_id, destination.image_set_id)),
        payload=payload,
        forced=force,
        new_destination=new_destination,
        failure=errors.sanitize_message(failure) if failure is not None else None,
    )
    store.pending_copies[(datastore_id, destination.image_set_id)] = pending
    store.at(pending.due, lambda due: complete_copy(store, pending, due))
    emit_image_set_event(store, destination, version, source_arn=store.image_set_arn(datastore_id, source_id))
    emit_image_set_event(store, source)
    return {
        "datastoreId": datastore_id,
        "sourceImageSetProperties": image_set_properties(store, source, source.latest),
        "destinationImageSetProperties": image_set_properties(store, destination, version),
    }


def complete_copy(store: Store, pending: PendingCopy, now: float) -> None:
    datastore = store.datastores[pending.datastore_id]
    destination = datastore.image_sets[pending.destination_id]
    source = datastore.image_sets[pending.source_id]
    version = destination.version(pending.destination_version)
    assert version is not None
    store.pending_copies.pop((pending.datastore_id, pending.destination_id), None)
    if pending.failure is None:
        version.metadata = merge_into(version.metadata, pending.payload, keep_destination_levels=pending.forced)
        store.release(destination, now, COPIED)
        store.release(source, now, COPIED)
        emit_image_set_event(store, destination, version)
        if store.settings.source_copy_events:
            emit_image_set_event(store, source)
    else:
        version.message = pending.failure
        store.release(destination, now, COPY_FAILED)
        store.release(source, now)
        emit_image_set_event(store, destination, version)
