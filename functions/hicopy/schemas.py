"""JSON Schemas of the public contracts, generated from the models: ``python -m hicopy.schemas <dir>``.

``schemas/`` in the repository holds the generated files; a test fails if they drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hicopy.contract import FAILED, IMPORT_FAILURES, IMPORT_PLANNED, REJECTED, SUCCEEDED
from hicopy.domain.events import (
    CopyOutcomeDetail,
    ImportFailuresDetail,
    ImportPlannedDetail,
    RejectedDetail,
)
from hicopy.domain.job import CopyJob

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def job_schema() -> dict[str, Any]:
    schema = CopyJob.model_json_schema()
    return {"$schema": DRAFT, "$id": "copy-job.schema.json", **schema, "title": "HealthImaging copy job"}


def event_schema(detail_type: str, detail_model: type[BaseModel]) -> dict[str, Any]:
    detail = detail_model.model_json_schema(ref_template="#/$defs/{model}")
    defs = detail.pop("$defs", {})
    if detail_model is CopyOutcomeDetail:  # narrow the shared outcome model per detail type
        status = "SUCCEEDED" if detail_type == SUCCEEDED else "FAILED"
        detail = {**detail, "properties": {**detail["properties"], "status": {"const": status}}}
        if status == "FAILED":
            detail["required"] = sorted({*detail.get("required", []), "reason"})
    return {
        "$schema": DRAFT,
        "$id": f"{slug(detail_type)}.schema.json",
        "title": f"{detail_type} event",
        "type": "object",
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "detail-type": {"const": detail_type},
            "source": {"type": "string", "minLength": 1},
            "detail": detail,
        },
        "$defs": defs,
    }


def slug(detail_type: str) -> str:
    return detail_type.lower().replace(" ", "-")


def all_schemas() -> dict[str, dict[str, Any]]:
    out = {"copy-job.schema.json": job_schema()}
    models: tuple[tuple[str, type[BaseModel]], ...] = (
        (SUCCEEDED, CopyOutcomeDetail),
        (FAILED, CopyOutcomeDetail),
        (REJECTED, RejectedDetail),
        (IMPORT_PLANNED, ImportPlannedDetail),
        (IMPORT_FAILURES, ImportFailuresDetail),
    )
    for detail_type, model in models:
        out[f"{slug(detail_type)}.schema.json"] = event_schema(detail_type, model)
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1] if len(argv) > 1 else "schemas")
    target.mkdir(parents=True, exist_ok=True)
    for name, schema in all_schemas().items():
        (target / name).write_text(render(schema))
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
