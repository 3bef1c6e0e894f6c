"""``hicopy plan`` (and ``submit --dry-run``): what each job would do, read from the live data store.

Each job goes through Prepare's own planning (``prepare``: data store, image sets, versions, chunks) on a read-only
HealthImaging adapter, so the versions, the chunks and the refusals are the ones the stack would produce. Only
``GetImageSet`` and ``GetImageSetMetadata`` are called.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hicopy.cli.domain import Handling, HealthImaging, OrchestratorError, index_metadata, plan_chunks, prepare
from hicopy.cli.jobs import CheckedJob, check_jobs, read_sources
from hicopy.cli.output import shorten
from hicopy.cli.stack import Stack

if TYPE_CHECKING:
    from hicopy.cli.context import Context


class ReadOnlyImaging(HealthImaging):
    """The HealthImaging adapter with each metadata document read once, and no writes."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self._metadata: dict[tuple[str, str, str | None, bool], dict[str, Any]] = {}

    def get_metadata(
        self, datastore_id: str, image_set_id: str, version_id: str | None = None, *, whole: bool = False
    ) -> dict[str, Any]:
        key = (datastore_id, image_set_id, version_id, whole)
        if key not in self._metadata:
            self._metadata[key] = super().get_metadata(datastore_id, image_set_id, version_id, whole=whole)
        return self._metadata[key]

    def copy_image_set(self, request: Any) -> Any:
        raise RuntimeError("planning is read-only: it never calls CopyImageSet")

    def delete_image_set(self, datastore_id: str, image_set_id: str) -> str:
        raise RuntimeError("planning is read-only: it never calls DeleteImageSet")


@dataclass
class JobPlan:
    where: str
    job: dict[str, Any] | None
    outcome: str  # "copy" | "wait" (Prepare would retry) | "refused" (the stack would fail it) | "invalid"
    reason: dict[str, str] | None = None  # {code, message} for wait/refused/invalid
    source: dict[str, Any] | None = None
    destination: dict[str, Any] | None = None
    frame_limit: int | None = None
    whole: bool | None = None
    total_instances: int | None = None
    total_frames: int | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in ("copy", "wait")

    def as_json(self) -> dict[str, Any]:
        job = self.job or {}
        return {
            "from": self.where,
            "jobId": job.get("jobId"),
            "outcome": self.outcome,
            "reason": self.reason,
            "datastoreId": job.get("datastoreId"),
            "source": self.source,
            "destination": self.destination,
            "promoteToPrimary": job.get("promoteToPrimary", False),
            "force": job.get("force", False),
            "frameLimit": self.frame_limit,
            "wholeCopy": self.whole,
            "totalInstances": self.total_instances,
            "totalFrames": self.total_frames,
            "chunks": self.chunks,
            "notes": self.notes,
        }


def plan_job(stack: Stack, checked: CheckedJob, imaging: ReadOnlyImaging) -> JobPlan:
    if checked.problem is not None or checked.state is None:
        return JobPlan(checked.where, checked.job, "invalid", {"code": "JobRejected", "message": str(checked.problem)})
    job, config = checked.state.job, stack.config
    result = JobPlan(checked.where, checked.job, "copy", frame_limit=config.frame_limit)
    allowed = config.datastore_ids
    if allowed is None:
        allowed = frozenset({job.datastoreId})
        result.notes.append(f"the stack's data stores were not checked ({config.source})")
    try:
        prepared = prepare(checked.state, imaging, allowed_datastores=allowed, frame_limit=config.frame_limit)
    except OrchestratorError as exc:
        retried = exc.handling is not Handling.TERMINAL
        result.outcome = "wait" if retried else "refused"
        result.reason = {"code": exc.code, "message": exc.message}
        if retried:
            result.notes.append("Prepare retries this error: the job would wait, then be planned")
        return result
    plan = prepared.plan
    assert plan is not None, "prepare always plans"
    result.source = plan.source.model_dump()
    result.destination = plan.destination.model_dump() if plan.destination else None
    metadata = imaging.get_metadata(job.datastoreId, plan.source.imageSetId, plan.source.versionId)
    copy_plan = plan_chunks(
        index_metadata(metadata), instances=job.instances, series=job.series, frame_limit=config.frame_limit
    )
    result.whole = plan.wholeCopy
    result.total_instances, result.total_frames = plan.totalInstances, plan.totalFrames
    result.chunks = [
        {
            "index": c.index,
            "instances": len(c.instances),
            "frames": c.frames,
            "series": len({i.series_uid for i in c.instances}),
            "copiableAttributes": c.copiable_attributes(),
        }
        for c in copy_plan.chunks
    ]
    return result


def plan_jobs(stack: Stack, jobs: Sequence[CheckedJob]) -> list[JobPlan]:
    imaging = ReadOnlyImaging(stack.client("medical-imaging"))
    return [plan_job(stack, checked, imaging) for checked in jobs]


def render(plans: Sequence[JobPlan], *, full: bool = False) -> str:
    return "\n\n".join(_render_one(p, full=full) for p in plans)


def _render_one(p: JobPlan, *, full: bool) -> str:
    job = p.job or {}
    head = f"{job.get('jobId') or '(no job ID)'} ({p.where}): "
    reason = f"{p.reason['code']}: {p.reason['message']}" if p.reason else ""
    if p.outcome == "invalid":
        return head + f"INVALID, {reason}"
    lines = [head + {"copy": "would copy", "wait": "would wait", "refused": "REFUSED"}[p.outcome]]
    if reason:
        lines.append(f"  reason       {reason}")
    if p.source:
        lines.append(f"  source       {p.source['imageSetId']} version {p.source['versionId']}")
        lines.append(f"  destination  {_destination(p)}")
        options = [name for name in ("force", "promoteToPrimary") if job.get(name)]
        lines.append(f"  options      {', '.join(options) or 'none'}")
        what = "the selection" if job.get("instances") or job.get("series") else "the whole image set"
        lines.append(
            f"  copies       {what}: {p.total_instances} instances, {p.total_frames} frames, in {len(p.chunks)} "
            f"chunk(s) of at most {p.frame_limit} frames"
        )
    for c in p.chunks:
        attributes = c["copiableAttributes"]
        shown = "none (whole image set)" if attributes is None else attributes if full else shorten(attributes, 100)
        lines.append(
            f"    chunk {c['index'] + 1}: {c['instances']} instances, {c['frames']} frames, {c['series']} series; "
            f"copiableAttributes {shown}"
        )
    lines.extend(f"  note         {n}" for n in p.notes)
    return "\n".join(lines)


def _destination(p: JobPlan) -> str:
    if p.destination:
        return f"{p.destination['imageSetId']} version {p.destination['versionId']} (merge into it)"
    return "a new primary image set" if (p.job or {}).get("promoteToPrimary") else "a new image set"


def show_plans(context: Context, jobs: Sequence[CheckedJob], *, full: bool) -> int:
    plans = plan_jobs(context.stack, jobs)
    context.out.result({"jobs": [p.as_json() for p in plans]}, render(plans, full=full))
    return 0 if all(p.ok for p in plans) else 1


# --- the command ------------------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "plan",
        parents=[common],
        help="show what jobs would do (read-only)",
        description="For each job: the versions that would be used, the chunks with their instance and frame counts "
        "and copiableAttributes, or why the stack would refuse it. Read-only: only GetImageSet and "
        "GetImageSetMetadata are called. Exit code 1 if any job is invalid or would be refused.",
    )
    add_sources(p)
    p.add_argument("--full", action="store_true", help="print each copiableAttributes whole")
    p.set_defaults(run=run)


def add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "sources",
        nargs="+",
        metavar="JOBS",
        help="a file, - (stdin), s3://bucket/key or inline JSON; each holds one job, a JSON array or JSON Lines",
    )


def run(args: argparse.Namespace, context: Context) -> int:
    jobs = check_jobs(read_sources(args.sources, context.stack, context.stdin), context.stack.now())
    return show_plans(context, jobs, full=args.full)
