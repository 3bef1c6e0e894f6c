"""``hicopy rerun JOB_ID``: send a job that did not succeed again, under a new job ID derived from the old one.

Execution names cannot be reused (for 90 days), so the rerun of ``copy-1`` is ``copy-1-r1``, then ``copy-1-r2`` (a
rerun of ``copy-1-r1`` is ``copy-1-r2`` too). The new job is linked to the original: it keeps the job's
``correlationId``, or, when the job had none, gets the original job ID as its ``correlationId``; every event of
the rerun carries it. A job planned after an import keeps its import trigger (with ``rerunOf``), so a
delete-after-copy still applies.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hicopy.cli import submitting, watching
from hicopy.cli.domain import TRIGGER_ATTRIBUTE
from hicopy.cli.executions import NOT_FOUND, describe_execution, read_status
from hicopy.cli.jobs import CheckedJob, RawJob, check_job
from hicopy.cli.stack import Stack

if TYPE_CHECKING:
    from hicopy.cli.context import Context

RERUNNABLE = ("FAILED", "TIMED_OUT", "ABORTED")
MAX_JOB_ID = 80
_SUFFIX = re.compile(r"-r(\d+)$")


class RerunRefused(Exception):
    pass


@dataclass(frozen=True)
class Rerun:
    original: str
    status: str
    job: CheckedJob

    def as_json(self) -> dict[str, Any]:
        return {"rerunOf": self.original, "originalStatus": self.status, **self.job.as_json(), "job": self.job.job}


def next_job_id(stack: Stack, job_id: str) -> str:
    """``<root>-r<n>`` with the smallest ``n`` not yet used by an execution (``root`` without a ``-r<n>`` suffix)."""
    root = _SUFFIX.sub("", job_id)
    match = _SUFFIX.search(job_id)
    n = int(match.group(1)) + 1 if match else 1
    while True:
        suffix = f"-r{n}"
        candidate = root[: MAX_JOB_ID - len(suffix)] + suffix
        if describe_execution(stack, candidate) is None:
            return candidate
        n += 1


def prepare_rerun(stack: Stack, job_id: str, *, allow_partial: bool, unpin: bool) -> Rerun:
    status = read_status(stack, job_id)
    if status.status == NOT_FOUND:
        raise RerunRefused(f"no execution named {job_id}")
    if status.status not in RERUNNABLE:
        raise RerunRefused(f"job {job_id} is {status.status}: only a job that ended {'/'.join(RERUNNABLE)} is rerun")
    if status.chunks_completed and not allow_partial:
        raise RerunRefused(
            f"job {job_id} already copied {status.chunks_completed} of {status.chunks} chunk(s) into "
            f"{(status.destination or {}).get('imageSetId')}; a rerun copies every chunk again "
            "(--allow-partial to rerun anyway)"
        )
    job = dict(status.job)
    job["jobId"] = next_job_id(stack, job_id)
    job.setdefault("correlationId", job_id)
    if unpin:
        job["source"] = {k: v for k, v in job["source"].items() if k != "versionId"}
        if job.get("destination"):
            job["destination"] = {k: v for k, v in job["destination"].items() if k != "versionId"}
    attributes = None
    if status.trigger.get("type") == "import":
        trigger = {**status.trigger, "rerunOf": job_id}
        attributes = {TRIGGER_ATTRIBUTE: json.dumps(trigger, separators=(",", ":"))}
    checked = check_job(RawJob(f"rerun of {job_id}", job), stack.now(), attributes)
    if checked.problem is not None:
        raise RerunRefused(f"the rerun of {job_id} is not a valid job: {checked.problem}")
    return Rerun(job_id, status.status, checked)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "rerun",
        parents=[common],
        help="send a failed job again under a new ID",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument(
        "--unpin", action="store_true", help="drop pinned versionIds: copy the latest versions (after StaleVersion)"
    )
    p.add_argument(
        "--allow-partial", action="store_true", help="rerun even though some chunks of the job were already copied"
    )
    p.add_argument("--dry-run", action="store_true", help="show the new job; send nothing")
    watching.add_follow_options(p, wait="then follow the new job until it ends (as watch)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, context: Context) -> int:
    stack, out = context.stack, context.out
    try:
        rerun = prepare_rerun(stack, args.job_id, allow_partial=args.allow_partial, unpin=args.unpin)
    except RerunRefused as exc:
        out.note(f"hicopy: rerun refused: {exc}")
        return 1
    new_id = str(rerun.job.job_id)
    if args.dry_run:
        out.result(rerun.as_json(), json.dumps(rerun.job.job, indent=2))
        return 0
    out.note(f"rerun of {rerun.original} ({rerun.status}) as {new_id}")
    [sent] = submitting.send(context, [rerun.job])
    if sent.error:
        return 1
    if out.as_json:
        out.json({**rerun.as_json(), "messageId": sent.message_id}, indent=None if args.wait else 2)
    else:
        out.line(new_id)
    return watching.follow(context, args, [new_id])
