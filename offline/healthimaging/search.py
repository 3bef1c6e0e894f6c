"""SearchImageSets: which image sets match ``searchCriteria``, in which order, and their ``DICOMTags`` summaries.

Filters (API): EQUAL on ``DICOMPatientId``, ``DICOMAccessionNumber``, ``DICOMStudyId``, ``DICOMStudyInstanceUID``,
``DICOMSeriesInstanceUID`` (any series of the image set), ``isPrimary``, ``createdAt``/``updatedAt``; BETWEEN on
``createdAt``, ``updatedAt``, ``DICOMStudyDateAndTime``. Emulator choice: without a sort, the most recently updated
first; deleted image sets are never returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from offline.healthimaging import errors, model
from offline.healthimaging.dicom import dicom_int, series_map
from offline.healthimaging.store import Datastore, ImageSet


def _study(metadata: Mapping[str, Any], element: str) -> tuple[Any, ...]:
    return (metadata.get("Study", {}).get("DICOM", {}).get(element),)


_STRING_FILTERS: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {
    "DICOMPatientId": lambda m: (m.get("Patient", {}).get("DICOM", {}).get("PatientID"),),
    "DICOMAccessionNumber": lambda m: _study(m, "AccessionNumber"),
    "DICOMStudyId": lambda m: _study(m, "StudyID"),
    "DICOMStudyInstanceUID": lambda m: _study(m, "StudyInstanceUID"),
    "DICOMSeriesInstanceUID": lambda m: tuple(series_map(m)),
}
_RANGE_FILTERS = ("createdAt", "updatedAt", "DICOMStudyDateAndTime")


def _tag_type(tag: str) -> type:
    """The Python type of a ``DICOMTags`` member in the model (integer or string)."""
    member = model.service_model().shape_for("DICOMTags").members[tag]
    return int if member.type_name == "integer" else str


def _study_date_time(metadata: Mapping[str, Any]) -> str:
    study = metadata.get("Study", {}).get("DICOM", {})
    return f"{study.get('StudyDate') or ''}{study.get('StudyTime') or ''}"


def _attribute(image_set: ImageSet, name: str) -> Any:
    latest = image_set.latest
    if name == "createdAt":
        return image_set.created_at
    if name == "updatedAt":
        return latest.updated_at
    if name == "DICOMStudyDateAndTime":
        return _study_date_time(latest.metadata)
    if name == "isPrimary":
        return latest.is_primary
    return _STRING_FILTERS[name](latest.metadata)


def _search_value(value: Mapping[str, Any]) -> tuple[str, Any]:
    ((name, item),) = value.items()
    if name == "DICOMStudyDateAndTime":
        return name, f"{item.get('DICOMStudyDate') or ''}{item.get('DICOMStudyTime') or ''}"
    return name, item


def _matches(image_set: ImageSet, search_filter: Mapping[str, Any]) -> bool:
    operator = search_filter["operator"]
    values = [_search_value(v) for v in search_filter["values"]]
    names = {name for name, _ in values}
    if len(names) != 1:
        raise errors.validation("All values of a filter must name the same attribute")
    name = names.pop()
    if operator == "BETWEEN":
        if name not in _RANGE_FILTERS or len(values) != 2:
            raise errors.validation("BETWEEN needs two values of createdAt, updatedAt or DICOMStudyDateAndTime")
        low, high = sorted(v for _, v in values)
        actual = _attribute(image_set, name)
        return bool(low <= actual <= high)
    if len(values) != 1:
        raise errors.validation("EQUAL needs exactly one value")
    wanted = values[0][1]
    actual = _attribute(image_set, name)
    if name in _STRING_FILTERS:
        return wanted in actual
    return bool(actual == wanted)


def _dicom_tags(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """SearchImageSets' ``DICOMTags`` from a metadata document: the model's integers from IS strings (``"1 "``),
    strings where the model has strings; an element of another type (a list, a null) is left out."""
    patient = metadata.get("Patient", {}).get("DICOM", {})
    study = metadata.get("Study", {}).get("DICOM", {})
    series = series_map(metadata)
    first_series: dict[str, Any] = next(iter(series.values()), {})
    first = first_series.get("DICOM", {})
    tags: dict[str, Any] = {
        "DICOMPatientId": patient.get("PatientID"),
        "DICOMPatientName": patient.get("PatientName"),
        "DICOMPatientBirthDate": patient.get("PatientBirthDate"),
        "DICOMPatientSex": patient.get("PatientSex"),
        "DICOMStudyInstanceUID": study.get("StudyInstanceUID"),
        "DICOMStudyId": study.get("StudyID"),
        "DICOMStudyDescription": study.get("StudyDescription"),
        "DICOMNumberOfStudyRelatedSeries": len(series),
        "DICOMNumberOfStudyRelatedInstances": sum(len(s.get("Instances", {})) for s in series.values()),
        "DICOMAccessionNumber": study.get("AccessionNumber"),
        "DICOMSeriesInstanceUID": next(iter(series), None),
        "DICOMSeriesModality": first.get("Modality"),
        "DICOMSeriesBodyPart": first.get("BodyPartExamined"),
        "DICOMSeriesNumber": dicom_int(first.get("SeriesNumber")),
        "DICOMStudyDate": study.get("StudyDate"),
        "DICOMStudyTime": study.get("StudyTime"),
    }
    return {k: v for k, v in tags.items() if isinstance(v, _tag_type(k))}


def matching(datastore: Datastore, criteria: Mapping[str, Any]) -> list[ImageSet]:
    """The live image sets of ``datastore`` that match every filter, in the requested (or default) order."""
    filters = criteria.get("filters") or []
    found = [s for s in datastore.image_sets.values() if not s.deleted and all(_matches(s, f) for f in filters)]
    sort = criteria.get("sort")
    if sort:
        field_name = sort["sortField"]
        found.sort(key=lambda s: (_attribute(s, field_name), s.image_set_id), reverse=sort["sortOrder"] == "DESC")
    else:
        # Emulator choice: without a sort, newest update first.
        found.sort(key=lambda s: (s.latest.updated_at, s.image_set_id), reverse=True)
    return found


def summary(image_set: ImageSet) -> dict[str, Any]:
    """One ``imageSetsMetadataSummaries`` item."""
    latest = image_set.latest
    return {
        "imageSetId": image_set.image_set_id,
        "version": latest.version_id,
        "createdAt": image_set.created_at,
        "updatedAt": latest.updated_at,
        "DICOMTags": _dicom_tags(latest.metadata),
        "isPrimary": latest.is_primary,
    }
