"""Why a non-primary image set is not primary: the attributes it disagrees on with the primary holding its Series.

HealthImaging keeps an imported image set non-primary when it conflicts with a primary image set already in the data
store. The developer guide's path to promote one ("Updating image set metadata"; "Understanding image sets") is:
resolve the conflict with ``UpdateImageSetMetadata``, then ``CopyImageSet`` with ``promoteToPrimary``, then delete
the non-primary image set. A ``promoteToPrimary`` copy of a set that still conflicts ends ``COPY_FAILED``, so the
promote policy plans none for it; ``Import Job Planned`` names the image set and the conflicting attributes
(names only, never values: they are PHI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NeedsResolution:
    image_set_id: str
    primary_image_set_id: str
    series_uid: str
    # "Patient.PatientName", "Study.StudyDate", "Series.SeriesNumber", ...: the levels HealthImaging normalizes.
    conflicting_attributes: list[str] = field(default_factory=list)


def _dicom(level: Any) -> dict[str, Any]:
    block = level.get("DICOM") if isinstance(level, dict) else None
    return block if isinstance(block, dict) else {}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()  # HealthImaging pads some values ("1 "): padding is no conflict
    return bool(a == b)


def conflicting_attributes(non_primary: dict[str, Any], primary: dict[str, Any], series_uid: str) -> list[str]:
    """The Patient-, Study- and Series-level attributes (of ``series_uid``) whose values differ, as
    ``<Level>.<Keyword>``, sorted. An attribute only one side has is a conflict too."""
    pairs = [
        ("Patient", _dicom(non_primary.get("Patient")), _dicom(primary.get("Patient"))),
        ("Study", _dicom(non_primary.get("Study")), _dicom(primary.get("Study"))),
    ]
    series = [((doc.get("Study") or {}).get("Series") or {}).get(series_uid) for doc in (non_primary, primary)]
    pairs.append(("Series", _dicom(series[0]), _dicom(series[1])))
    found = []
    for level, mine, theirs in pairs:
        for keyword in sorted(set(mine) | set(theirs)):
            if keyword not in mine or keyword not in theirs or not _same(mine[keyword], theirs[keyword]):
                found.append(f"{level}.{keyword}")
    return found
