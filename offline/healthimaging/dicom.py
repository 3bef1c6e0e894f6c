"""DICOM-side helpers: UIDs, realistic image set metadata, and reading/merging the metadata hierarchy.

Image set metadata has the layout GetImageSetMetadata returns (devguide "understanding image sets"):
``{"SchemaVersion", "DatastoreID", "ImageSetID", "Patient": {"DICOM"}, "Study": {"DICOM", "Series":
{<SeriesInstanceUID>: {"DICOM", "Instances": {<SOPInstanceUID>: {"DICOM", "DICOMVRs", "StoredTransferSyntaxUID",
"ChecksumType", "ImageFrames": [...]}}}}}}``.

Values are written as real documents write them (``tests/data/healthimaging/metadata``): integer-string (IS) elements
such as ``SeriesNumber``, ``InstanceNumber`` and ``NumberOfFrames`` are strings, padded with a space to an even length
(``"1 "``, ``"11"``) in the 2025 documents and unpadded (``"1"``) in the 2023 one; US elements (``Rows``,
``BitsAllocated``, ...) are integers. Readers accept either (``dicom_int``); count frames with ``len(ImageFrames)``.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
SERVICE_UID_PATTERN = re.compile(r"^[0-9.]+$")  # HealthImaging's own UID pattern (model: DICOMStudyInstanceUID)
MAX_UID_LENGTH = 64
IS_PATTERN = re.compile(r"^[+-]?[0-9]{1,12}$")  # an IS value without its padding (PS3.5 6.2)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
CHECKSUM_TYPE = "DECOMPRESSED"  # what the 2025 documents carry as ChecksumType

Metadata = dict[str, Any]


def valid_uid(uid: str) -> bool:
    """DICOM UID rules (PS3.5 9.1): digits and dots, no empty or leading-zero components, at most 64 characters."""
    return len(uid) <= MAX_UID_LENGTH and bool(UID_PATTERN.match(uid))


def service_uid(uid: str) -> bool:
    """Whether HealthImaging holds ``uid`` as a UID: ``[0-9.]+``, at most 64 characters. Looser than ``valid_uid``:
    real archives hold UIDs with leading-zero components, and a document seeded from them must be accepted."""
    return len(uid) <= MAX_UID_LENGTH and bool(SERVICE_UID_PATTERN.match(uid))


def dicom_number(value: int, *, pad: bool = True) -> str:
    """An IS (integer string) value as GetImageSetMetadata writes it: ``"1 "`` (padded to an even length), or
    ``"1"`` with ``pad=False``."""
    text = str(value)
    return f"{text} " if pad and len(text) % 2 else text


def dicom_int(value: Any) -> int | None:
    """An integer element of a metadata document: an int, or an IS string such as ``"1 "``; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and IS_PATTERN.match(value.strip(" ")):
        return int(value.strip(" "))
    return None


def new_uid(rng: random.Random) -> str:
    """A UUID-derived UID under the ``2.25`` root (PS3.5 B.2): ``2.25.<decimal of a 128-bit random int>``."""
    return f"2.25.{rng.getrandbits(128) | 1}"


def new_resource_id(rng: random.Random) -> str:
    """A 32-character ``[0-9a-z]`` identifier (data store, image set, import job, frame)."""
    return f"{rng.getrandbits(128):032x}"


def build_metadata(
    rng: random.Random,
    *,
    series: int = 1,
    instances_per_series: int = 1,
    frames_per_instance: int = 1,
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_uid: str | None = None,
    series_uids: list[str] | None = None,
    modality: str = "CT",
    pad_numbers: bool = True,
) -> Metadata:
    """Realistic metadata for one image set (``DatastoreID``/``ImageSetID`` are filled in by the store).

    The layout and value types follow the real documents (module docstring); ``pad_numbers`` pads IS values.
    """
    if series_uids is not None:
        series = len(series_uids)
    if series < 1 or instances_per_series < 1 or frames_per_instance < 1:
        raise ValueError("series, instances_per_series and frames_per_instance must be >= 1")
    study_uid = study_uid or new_uid(rng)
    uids = series_uids or [new_uid(rng) for _ in range(series)]
    for uid in [study_uid, *uids]:
        if not valid_uid(uid):
            raise ValueError(f"not a valid DICOM UID: {uid!r}")
    number = rng.randrange(10_000, 99_999)
    metadata: Metadata = {
        "SchemaVersion": "1.1",
        "DatastoreID": None,
        "ImageSetID": None,
        "Patient": {
            "DICOM": {
                "PatientID": patient_id or f"PAT{number}",
                "PatientName": patient_name or f"DOE^JANE^{number}",
                "PatientBirthDate": "19700101",
                "PatientSex": "F",
            }
        },
        "Study": {
            "DICOM": {
                "StudyInstanceUID": study_uid,
                "StudyID": f"S{number}",
                "StudyDate": "20240314",
                "StudyTime": "083501",
                "AccessionNumber": f"ACC{number}",
                "StudyDescription": "CT CHEST",
            },
            "Series": {},
        },
    }
    for index, series_uid in enumerate(uids, start=1):
        instances: dict[str, Any] = {}
        for number_in_series in range(1, instances_per_series + 1):
            sop_uid = new_uid(rng)
            instances[sop_uid] = {
                "DICOM": {
                    "SOPClassUID": CT_IMAGE_STORAGE,
                    "SOPInstanceUID": sop_uid,
                    "InstanceNumber": dicom_number(number_in_series, pad=pad_numbers),
                    "Rows": 512,
                    "Columns": 512,
                    "BitsAllocated": 16,
                    "BitsStored": 12,
                    "HighBit": 11,
                    "PixelRepresentation": 0,
                    "SamplesPerPixel": 1,
                    "PhotometricInterpretation": "MONOCHROME2",
                    "NumberOfFrames": dicom_number(frames_per_instance, pad=pad_numbers),
                    "PixelData": None,
                },
                "DICOMVRs": {},
                "StoredTransferSyntaxUID": HTJ2K_LOSSLESS_RPCL,
                "ChecksumType": CHECKSUM_TYPE,
                "ImageFrames": [new_frame(rng) for _ in range(frames_per_instance)],
            }
        metadata["Study"]["Series"][series_uid] = {
            "DICOM": {
                "SeriesInstanceUID": series_uid,
                "SeriesNumber": dicom_number(index, pad=pad_numbers),
                "Modality": modality,
                "SeriesDescription": f"AXIAL {index}",
                "BodyPartExamined": "CHEST",
            },
            "Instances": instances,
        }
    return metadata


def new_frame(rng: random.Random) -> dict[str, Any]:
    return {
        "ID": new_resource_id(rng),
        "PixelDataChecksumFromBaseToFullResolution": [
            {"Width": 512, "Height": 512, "Checksum": rng.getrandbits(32)},
        ],
        "MinPixelValue": 0,
        "MaxPixelValue": 4095,
        "FrameSizeInBytes": 524288,
    }


# ------------------------------------------------------------------------------------------------------ reading


def series_map(metadata: Mapping[str, Any]) -> dict[str, Any]:
    series = metadata.get("Study", {}).get("Series", {})
    return series if isinstance(series, dict) else {}


def instances_by_series(metadata: Mapping[str, Any]) -> dict[str, list[str]]:
    return {uid: list(s.get("Instances", {})) for uid, s in series_map(metadata).items()}


def all_sop_uids(metadata: Mapping[str, Any]) -> set[str]:
    return {sop for sops in instances_by_series(metadata).values() for sop in sops}


def frame_count(metadata: Mapping[str, Any], selection: Mapping[str, Iterable[str]] | None = None) -> int:
    """Number of ImageFrames in the whole image set, or in ``selection`` (Series UID -> SOP UIDs)."""
    total = 0
    for series_uid, series in series_map(metadata).items():
        instances = series.get("Instances", {})
        wanted = instances if selection is None else [s for s in selection.get(series_uid, ()) if s in instances]
        total += sum(len(instances[sop].get("ImageFrames", [])) for sop in wanted)
    return total


def study_uid_of(metadata: Mapping[str, Any]) -> str | None:
    value = metadata.get("Study", {}).get("DICOM", {}).get("StudyInstanceUID")
    return value if isinstance(value, str) else None


def patient_id_of(metadata: Mapping[str, Any]) -> str | None:
    value = metadata.get("Patient", {}).get("DICOM", {}).get("PatientID")
    return value if isinstance(value, str) else None


def _unpadded(value: Any) -> Any:
    return value.rstrip(" ") if isinstance(value, str) else value


def _disagree(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two DICOM element dicts disagree when an element present (non-null) in both has different values.

    Trailing space padding is not part of a DICOM value (``"1 "`` and ``"1"`` agree).
    """
    a, b = a or {}, b or {}
    return any(a[k] is not None and b.get(k) is not None and _unpadded(a[k]) != _unpadded(b[k]) for k in a)


def level_conflict(source: Mapping[str, Any], destination: Mapping[str, Any], series_uids: Iterable[str]) -> str | None:
    """First hierarchy level (``Patient``, ``Study``, ``Series``) where the two image sets disagree, else None.

    Series level: each series in ``series_uids`` must exist in the destination (when it has series at all) with
    agreeing series-level elements.
    """
    if _disagree(source.get("Patient", {}).get("DICOM"), destination.get("Patient", {}).get("DICOM")):
        return "Patient"
    if _disagree(source.get("Study", {}).get("DICOM"), destination.get("Study", {}).get("DICOM")):
        return "Study"
    src_series, dst_series = series_map(source), series_map(destination)
    for uid in series_uids:
        if dst_series and uid not in dst_series:
            return "Series"
        if uid in dst_series and _disagree(src_series.get(uid, {}).get("DICOM"), dst_series[uid].get("DICOM")):
            return "Series"
    return None


def select(metadata: Mapping[str, Any], selection: Mapping[str, Iterable[str]] | None) -> Metadata:
    """A deep copy of ``metadata`` restricted to ``selection`` (Series UID -> SOP UIDs); None = everything."""
    chosen = copy.deepcopy(dict(metadata))
    if selection is None:
        return chosen
    series = series_map(chosen)
    for series_uid in list(series):
        if series_uid not in selection:
            del series[series_uid]
            continue
        wanted = set(selection[series_uid])
        instances = series[series_uid].get("Instances", {})
        for sop in list(instances):
            if sop not in wanted:
                del instances[sop]
    return chosen


def merge_into(destination: Metadata, source: Mapping[str, Any], *, keep_destination_levels: bool) -> Metadata:
    """``destination`` plus the series/instances of ``source`` (returns a new dict).

    ``keep_destination_levels`` (a forced copy): Patient/Study elements and the elements of series that already
    exist stay as in the destination. Otherwise source elements are added where the destination has none.
    Instances with the same SOP Instance UID are replaced by the source's.
    """
    merged = copy.deepcopy(destination)
    for level in ("Patient", "Study"):
        target = merged.setdefault(level, {}).setdefault("DICOM", {})
        if not keep_destination_levels:
            for key, value in source.get(level, {}).get("DICOM", {}).items():
                if target.get(key) is None:
                    target[key] = copy.deepcopy(value)
    dst_series = merged.setdefault("Study", {}).setdefault("Series", {})
    for series_uid, series in series_map(source).items():
        if series_uid not in dst_series:
            dst_series[series_uid] = {"DICOM": copy.deepcopy(series.get("DICOM", {})), "Instances": {}}
        elif not keep_destination_levels:
            target = dst_series[series_uid].setdefault("DICOM", {})
            for key, value in series.get("DICOM", {}).items():
                if target.get(key) is None:
                    target[key] = copy.deepcopy(value)
        instances = dst_series[series_uid].setdefault("Instances", {})
        for sop_uid, instance in series.get("Instances", {}).items():
            instances[sop_uid] = copy.deepcopy(instance)
    return merged


def empty_like(metadata: Mapping[str, Any]) -> Metadata:
    """Same Patient/Study elements, no series (the content of a new image set whose copy failed)."""
    return {
        "SchemaVersion": metadata.get("SchemaVersion", "1.1"),
        "DatastoreID": metadata.get("DatastoreID"),
        "ImageSetID": metadata.get("ImageSetID"),
        "Patient": {"DICOM": copy.deepcopy(metadata.get("Patient", {}).get("DICOM", {}))},
        "Study": {"DICOM": copy.deepcopy(metadata.get("Study", {}).get("DICOM", {})), "Series": {}},
    }


def copiable_attributes(selection: Mapping[str, Iterable[str]], schema_version: str | float = "1.1") -> str:
    """The ``copiableAttributes`` JSON string for a selection of Series Instance UID -> SOP Instance UIDs."""
    return json.dumps(
        {
            "SchemaVersion": schema_version,
            "Study": {
                "Series": {
                    series_uid: {"Instances": {sop: {} for sop in sops}} for series_uid, sops in selection.items()
                }
            },
        },
        separators=(",", ":"),
    )
