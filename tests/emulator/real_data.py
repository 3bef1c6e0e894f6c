"""The real HealthImaging payloads under ``tests/data/healthimaging`` (provenance: ``tests/data/README.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "healthimaging"

#: Real GetImageSetMetadata documents: 2025 (grand-challenge, padded IS strings) and 2023 (aws-samples, unpadded).
METADATA_DOCUMENTS = ("grand-challenge-ct-2025.json", "aws-samples-usdoppler-2023.json")


def load(relative: str) -> Any:
    return json.loads((DATA / relative).read_text())


def metadata_document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = load(f"metadata/{name}")
    return document


def instances(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(Series Instance UID, SOP Instance UID, instance) for every instance of a metadata document."""
    return [
        (series_uid, sop_uid, instance)
        for series_uid, series in document["Study"]["Series"].items()
        for sop_uid, instance in series["Instances"].items()
    ]
