"""Test data: ``SeedSpec`` (what to generate), ``SeededImageSet`` (what was created), and the seeding itself."""

from __future__ import annotations

import copy
import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hicopy.contract import IMAGE_SET_ID_PATTERN
from offline.healthimaging.dicom import (
    Metadata,
    build_metadata,
    copiable_attributes,
    frame_count,
    instances_by_series,
    patient_id_of,
    series_map,
    service_uid,
    study_uid_of,
)
from offline.healthimaging.store import ACTIVE, ImageSet, Store


@dataclass(frozen=True)
class SeedSpec:
    """Generated DICOM content: one study, ``series`` series, each with ``instances_per_series`` instances."""

    series: int = 1
    instances_per_series: int = 1
    frames_per_instance: int = 1
    patient_id: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    series_uids: tuple[str, ...] | None = None
    modality: str = "CT"

    def build(self, store: Store) -> Metadata:
        return build_metadata(
            store.rng,
            series=self.series,
            instances_per_series=self.instances_per_series,
            frames_per_instance=self.frames_per_instance,
            patient_id=self.patient_id,
            patient_name=self.patient_name,
            study_uid=self.study_uid,
            series_uids=list(self.series_uids) if self.series_uids is not None else None,
            modality=self.modality,
            pad_numbers=store.settings.pad_numbers,
        )


@dataclass
class SeededImageSet:
    """An image set (version) the emulator holds, with the UIDs a test needs."""

    datastore_id: str
    image_set_id: str
    version_id: str
    is_primary: bool
    study_uid: str
    patient_id: str | None
    series_uids: list[str]
    instances: dict[str, list[str]]  # Series Instance UID -> SOP Instance UIDs
    frames: int
    metadata: Metadata = field(repr=False)

    def copiable_attributes(self, selection: Mapping[str, list[str]] | None = None) -> str:
        """``copiableAttributes`` for ``selection`` (Series UID -> SOP UIDs), default: every instance."""
        return copiable_attributes(selection if selection is not None else self.instances)


def describe(image_set: ImageSet) -> SeededImageSet:
    latest = image_set.latest
    metadata = copy.deepcopy(latest.metadata)
    instances = instances_by_series(metadata)
    return SeededImageSet(
        datastore_id=image_set.datastore_id,
        image_set_id=image_set.image_set_id,
        version_id=str(latest.version_id),
        is_primary=latest.is_primary,
        study_uid=study_uid_of(metadata) or "",
        patient_id=patient_id_of(metadata),
        series_uids=list(instances),
        instances=instances,
        frames=frame_count(metadata),
        metadata=metadata,
    )


MetadataDocument = Mapping[str, Any] | str | bytes


def load_metadata(document: MetadataDocument) -> Metadata:
    """A metadata document as GetImageSetMetadata returns it (gzip or plain JSON bytes, a JSON string, or the parsed
    object) -> a deep copy as a dict."""
    if isinstance(document, bytes):
        document = gzip.decompress(document) if document[:2] == b"\x1f\x8b" else document
        document = document.decode("utf-8")
    parsed = json.loads(document) if isinstance(document, str) else copy.deepcopy(dict(document))
    if not isinstance(parsed, dict):
        raise ValueError("a metadata document is a JSON object")
    return parsed


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``metadata`` has the image set layout with UIDs HealthImaging accepts."""
    study_uid = study_uid_of(metadata)
    if study_uid is None or not service_uid(study_uid):
        raise ValueError(f"metadata needs Study.DICOM.StudyInstanceUID (a valid UID), got {study_uid!r}")
    series = series_map(metadata)
    if not series:
        raise ValueError("metadata needs at least one series under Study.Series")
    for series_uid, content in series.items():
        if not service_uid(series_uid) or not isinstance(content, dict):
            raise ValueError(f"not a valid Series Instance UID: {series_uid!r}")
        for sop_uid in content.get("Instances", {}):
            if not service_uid(sop_uid):
                raise ValueError(f"not a valid SOP Instance UID: {sop_uid!r}")


def seed(
    store: Store,
    datastore_id: str,
    metadata: Metadata,
    *,
    is_primary: bool,
    now: float,
    image_set_id: str | None = None,
) -> ImageSet:
    """Put an ACTIVE/CREATED image set (version 1) into the data store; no events (test setup).

    ``image_set_id``: keep this id (e.g. the document's own ``ImageSetID``) instead of generating one.
    """
    check_metadata(metadata)
    if image_set_id is not None and not re.fullmatch(IMAGE_SET_ID_PATTERN, image_set_id):
        raise ValueError(f"image_set_id must match {IMAGE_SET_ID_PATTERN}, got {image_set_id!r}")
    store.active_datastore(datastore_id)
    if is_primary:
        study_uid = study_uid_of(metadata)
        for series_uid in series_map(metadata):
            existing = store.primary_for(datastore_id, study_uid, series_uid)
            if existing is not None:
                raise ValueError(
                    f"series {series_uid} already has the primary image set {existing.image_set_id}; "
                    "seed this one with is_primary=False"
                )
    return store.new_image_set(
        datastore_id,
        metadata,
        now=now,
        is_primary=is_primary,
        state=ACTIVE,
        status="CREATED",
        image_set_id=image_set_id,
    )
