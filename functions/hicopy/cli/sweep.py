"""``hicopy sweep DATASTORE_ID``: backfill the post-import policy over the non-primary image sets already stored.

The image sets are found with SearchImageSets (``isPrimary`` = false, every page), keeping those a copy never
touched (GetImageSet: workflow status not COPIED, COPYING or COPY_FAILED): a copy's result is non-primary too, and a
source already consolidated shows COPIED; ``--include-copies`` keeps them all. The jobs are planned by the
import planner's own ``plan_jobs`` (the same policy, force and delete-after as the stack's ImportPlanner, unless
overridden) as if one import had produced them all. The sweep's ID (default ``sweep-<UTC date>``) stands for the
import job ID: the jobs are ``imp-<sweep ID>-<imageSetId>[-s<n>]``, so sweeping again under the same ID starts
nothing twice. Dry run by default; ``--submit`` sends the jobs (with the planner's trigger, ``type: import``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from hicopy.cli import submitting, watching
from hicopy.cli.domain import (
    DATASTORE_ID_PATTERN,
    POLICIES,
    TRIGGER_ATTRIBUTE,
    HealthImaging,
    ImportedImageSet,
    ImportResult,
    PlannedJob,
    PlannerImaging,
    Policy,
    plan_jobs,
)
from hicopy.cli.jobs import CheckedJob, RawJob, check_job
from hicopy.cli.output import UsageError, table
from hicopy.cli.stack import Stack

if TYPE_CHECKING:
    from hicopy.cli.context import Context

NON_PRIMARY = [{"values": [{"isPrimary": False}], "operator": "EQUAL"}]
COPY_STATUSES = ("COPIED", "COPYING", "COPYING_WITH_READ_ONLY_ACCESS", "COPY_FAILED")


def non_primary_image_sets(
    stack: Stack, datastore_id: str, limit: int, *, include_copies: bool
) -> tuple[list[ImportedImageSet], list[str]]:
    """The non-primary image sets to sweep, and those skipped because a copy made or read them."""
    imaging = HealthImaging(stack.client("medical-imaging"))
    keep: list[ImportedImageSet] = []
    skipped: list[str] = []
    for found in imaging.search_image_sets(datastore_id, NON_PRIMARY, limit=limit):
        if found.is_primary is not False:
            continue
        copied = not include_copies and (
            imaging.get_image_set(datastore_id, found.image_set_id).workflow_status in COPY_STATUSES
        )
        if copied:
            skipped.append(found.image_set_id)
        else:
            keep.append(ImportedImageSet(found.image_set_id, is_primary=False))
    return keep, skipped


def plan_sweep(
    stack: Stack,
    datastore_id: str,
    image_sets: list[ImportedImageSet],
    *,
    sweep_id: str,
    policy: Policy,
    force: bool,
    delete_after: bool,
) -> list[PlannedJob]:
    result = ImportResult(
        job_id=sweep_id,
        datastore_id=datastore_id,
        status="COMPLETED",
        message=None,
        output_uri="",
        image_sets=image_sets,
    )
    imaging = PlannerImaging(HealthImaging(stack.client("medical-imaging")))
    planned = plan_jobs(result, imaging, policy=policy, force=force, delete_after=delete_after)
    return [PlannedJob(p.job, {**p.trigger, "sweep": True}) for p in planned]


def _checked(planned: Sequence[PlannedJob], now: float) -> list[CheckedJob]:
    return [
        check_job(
            RawJob(f"sweep {p.job['source']['imageSetId']}", p.job),
            now,
            {TRIGGER_ATTRIBUTE: json.dumps(p.trigger, separators=(",", ":"))},
        )
        for p in planned
    ]


def _render(
    datastore_id: str, found: int, skipped: int, planned: Sequence[PlannedJob], policy: str, submitted: bool
) -> str:
    head = f"{found} non-primary image set(s) to sweep in {datastore_id}"
    if skipped:
        head += f" ({skipped} more skipped: made or read by a copy; --include-copies sweeps them too)"
    head += f"; policy {policy}: {len(planned)} job(s)"
    if not planned:
        return head
    rows = []
    for p in planned:
        job, trigger = p.job, p.trigger
        into = (job.get("destination") or {}).get("imageSetId") or "a new primary image set"
        what = "series " + job["series"][0] if job.get("series") else "whole image set"
        rows.append(
            [
                job["jobId"],
                trigger.get("action", policy),
                job["source"]["imageSetId"],
                into,
                what,
                "yes" if job.get("force") else "no",
                "yes" if trigger.get("deleteSourceAfterCopy") else "no",
            ]
        )
    text = head + "\n" + table(["JOB ID", "ACTION", "SOURCE", "INTO", "COPIES", "FORCE", "DELETE SOURCE"], rows)
    return text + ("" if submitted else "\n\ndry run: nothing sent (--submit sends these jobs)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="backfill: plan (or --submit) the post-import policy for stored non-primary image sets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("datastore_id", metavar="DATASTORE_ID")
    p.add_argument("--policy", choices=[p for p in POLICIES if p != "none"], help="default: the stack's policy")
    p.add_argument(
        "--force", action=argparse.BooleanOptionalAction, default=None, help="force on merges (default: the stack's)"
    )
    p.add_argument(
        "--delete-after",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="delete each source after its whole copy succeeded (default: the stack's deleteAfterConsolidate)",
    )
    p.add_argument("--sweep-id", help="stands for the import job ID in the job IDs (default: sweep-<UTC date>)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many image sets (default 1000)")
    p.add_argument(
        "--include-copies", action="store_true", help="also image sets whose latest version a copy made or read"
    )
    p.add_argument("--submit", action="store_true", help="send the planned jobs to the job queue")
    watching.add_follow_options(p, wait="with --submit: follow the jobs until they end (as watch)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, context: Context) -> int:
    stack, out = context.stack, context.out
    if not re.fullmatch(DATASTORE_ID_PATTERN, args.datastore_id):
        raise UsageError(f"{args.datastore_id!r} is not a data store ID (32 characters [0-9a-z])")
    config = stack.config
    if config.datastore_ids is not None and args.datastore_id not in config.datastore_ids:
        out.note(f"hicopy: the stack is not configured for data store {args.datastore_id}: its jobs would fail")
        return 1
    policy = cast(Policy, args.policy or config.post_import_policy)
    if policy == "none":
        raise UsageError("the stack's post-import policy is none: choose one with --policy consolidate|promote")
    force = config.consolidate_force if args.force is None else args.force
    delete_after = config.delete_after_consolidate if args.delete_after is None else args.delete_after
    sweep_id = args.sweep_id or f"sweep-{datetime.fromtimestamp(stack.now(), UTC):%Y%m%d}"
    image_sets, skipped = non_primary_image_sets(
        stack, args.datastore_id, args.limit, include_copies=args.include_copies
    )
    planned = plan_sweep(
        stack, args.datastore_id, image_sets, sweep_id=sweep_id, policy=policy, force=force, delete_after=delete_after
    )
    checked = _checked(planned, stack.now())
    data: dict[str, Any] = {
        "datastoreId": args.datastore_id,
        "sweepId": sweep_id,
        "policy": policy,
        "nonPrimaryImageSets": [s.image_set_id for s in image_sets],
        "skippedCopies": skipped,
        "jobs": [{"job": p.job, "trigger": p.trigger} for p in planned],
        "sent": None,
    }
    invalid = [c for c in checked if c.problem is not None]
    for c in invalid:
        out.note(f"hicopy: planned job {c.job_id} is invalid: {c.problem}")
    if not args.submit or invalid:
        out.result(data, _render(args.datastore_id, len(image_sets), len(skipped), planned, policy, submitted=False))
        return 1 if invalid else 0
    sent = submitting.send(context, checked)
    data["sent"] = [s.as_json() for s in sent]
    if out.as_json:
        out.json(data, indent=None if args.wait else 2)
    else:
        out.line(_render(args.datastore_id, len(image_sets), len(skipped), planned, policy, submitted=True))
    if any(s.error for s in sent):
        return 1
    return watching.follow(context, args, [s.job_id for s in sent])
