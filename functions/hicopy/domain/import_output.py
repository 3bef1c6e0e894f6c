"""Reading what a HealthImaging import job produced (facts §2), under the job's ``outputS3Uri``:
``job-output-manifest.json`` (``jobSummary`` with ``imageSetsSummary``), ``SUCCESS/success.ndjson``,
``WARNING/warning.ndjson`` and ``FAILURE/failure.ndjson``.

The readers are tolerant: unknown fields are ignored, a missing ndjson file means "no records", and ndjson lines may
use the Python spellings ``True``/``False``/``None`` that the documentation's examples show. Planning from what is
read: ``hicopy.domain.imports``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hicopy.domain.conflicts import NeedsResolution
from hicopy.domain.ports import ImportOutputPort
from hicopy.errors import ImportOutputInvalid, ManifestNotReady

MANIFEST = "job-output-manifest.json"


@dataclass
class ImportedImageSet:
    image_set_id: str
    is_primary: bool | None = None
    version: int | None = None
    matched_instances: int | None = None


@dataclass(frozen=True)
class FileFailure:
    input_file: str
    exception_type: str
    message: str


@dataclass
class ImportResult:
    job_id: str
    datastore_id: str
    status: str
    message: str | None
    output_uri: str
    image_sets: list[ImportedImageSet] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    warnings: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    needs_resolution: list[NeedsResolution] = field(default_factory=list)  # what plan_jobs refused to promote
    failure_report_uri: str | None = None  # where failure.ndjson was read

    @property
    def non_primary(self) -> list[ImportedImageSet]:
        return [s for s in self.image_sets if s.is_primary is False]


# --- reading the import output ----------------------------------------------------------------------------------
_PY_LITERALS = re.compile(r"(?<![\w\"])(True|False|None)(?![\w\"])")


def loads_lenient(text: str) -> Any:
    """JSON, also accepting the Python literals ``True``/``False``/``None`` (as in the docs' ndjson examples)."""
    try:
        return json.loads(text)
    except ValueError:
        fixed = _PY_LITERALS.sub(lambda m: {"True": "true", "False": "false", "None": "null"}[m.group(1)], text)
        return json.loads(fixed)


def parse_ndjson(data: bytes | None) -> list[dict[str, Any]]:
    if not data:
        return []
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            value = loads_lenient(line)
            if isinstance(value, dict):
                records.append(value)
    return records


def _join(prefix: str, name: str) -> str:
    return prefix if prefix.endswith(name) else prefix.rstrip("/") + "/" + name


def _image_set_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("imageSetId") or obj.get("imagesetId")
    return str(value) if value else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def read_import_result(job: dict[str, Any], output: ImportOutputPort) -> ImportResult:
    """Read the manifest and the per-file results of an import job (``job`` = GetDICOMImportJob's jobProperties).

    Output that is not in the documented shape raises ``ImportOutputInvalid`` (never a bare KeyError/TypeError).
    """
    try:
        return _read_import_result(job, output)
    except (KeyError, TypeError, AttributeError, ValueError, UnicodeDecodeError) as exc:
        raise ImportOutputInvalid(
            f"import job {job.get('jobId')!s:.40}: output under {job.get('outputS3Uri')!s:.200} is not in the "
            f"documented shape ({type(exc).__name__})"
        ) from exc


def _read_import_result(job: dict[str, Any], output: ImportOutputPort) -> ImportResult:
    out_uri = str(job["outputS3Uri"])
    result = ImportResult(
        job_id=str(job["jobId"]),
        datastore_id=str(job["datastoreId"]),
        status=str(job.get("jobStatus", "")),
        message=job.get("message"),
        output_uri=out_uri,
    )
    raw = output.read(_join(out_uri, MANIFEST))
    if raw is None:
        if result.status == "FAILED":
            return result  # a failed job may write nothing
        raise ManifestNotReady(f"{_join(out_uri, MANIFEST)} is not there yet")
    summary = (loads_lenient(raw.decode("utf-8")) or {}).get("jobSummary") or {}
    result.summary = {k: v for k, v in summary.items() if k.startswith("numberOf")}
    by_id: dict[str, ImportedImageSet] = {}

    def note(obj: dict[str, Any]) -> None:
        image_set_id = _image_set_id(obj)
        if not image_set_id:
            return
        entry = by_id.setdefault(image_set_id, ImportedImageSet(image_set_id))
        primary = _bool(obj.get("isPrimary"))
        if primary is not None:
            entry.is_primary = primary if entry.is_primary is None else (entry.is_primary and primary)
        version = obj.get("imageSetVersion")
        if version is not None and re.fullmatch(r"[0-9]{1,20}", str(version)):  # ASCII digits only
            entry.version = max(entry.version or 0, int(version))
        if "numberOfMatchedSOPInstances" in obj:
            entry.matched_instances = int(obj["numberOfMatchedSOPInstances"])

    for item in summary.get("imageSetsSummary") or []:
        if isinstance(item, dict):
            note(item)
    success = summary.get("successOutputS3Uri") or _join(out_uri, "SUCCESS/")
    warning = summary.get("warningsOutputS3Uri") or _join(out_uri, "WARNING/")
    failure = summary.get("failureOutputS3Uri") or _join(out_uri, "FAILURE/")
    for record in parse_ndjson(output.read(_join(success, "success.ndjson"))):
        note(record.get("importResponse") or {})
    warnings = parse_ndjson(output.read(_join(warning, "warning.ndjson")))
    for record in warnings:
        note(record.get("importResponse") or {})
    result.warnings = len(warnings)
    result.failure_report_uri = _join(failure, "failure.ndjson")
    for record in parse_ndjson(output.read(result.failure_report_uri)):
        exc = record.get("exception") or {}
        result.failures.append(
            FileFailure(
                str(record.get("inputFile", "")), str(exc.get("exceptionType", "")), str(exc.get("message", ""))
            )
        )
    result.image_sets = list(by_id.values())
    return result
