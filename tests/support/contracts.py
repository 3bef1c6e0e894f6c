"""Validate jobs and emitted events against the committed JSON Schemas in ``schemas/``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from hicopy.schemas import slug

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema)


def assert_valid_event(detail_type: str, detail: dict[str, Any], source: str = "hicopy.orchestrator") -> None:
    event = {"detail-type": detail_type, "source": source, "detail": detail}
    errors = sorted(validator(f"{slug(detail_type)}.schema.json").iter_errors(event), key=str)
    assert not errors, f"{detail_type} event does not match its schema: {[e.message for e in errors]}"


def assert_valid_job(job: dict[str, Any]) -> None:
    errors = list(validator("copy-job.schema.json").iter_errors(job))
    assert not errors, [e.message for e in errors]
