"""``hicopy submit``: check every job with the consumer's model, then send them to the job queue."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hicopy.cli import planning, watching
from hicopy.cli.jobs import CheckedJob, Sent, check_jobs, read_sources, send_jobs

if TYPE_CHECKING:
    from hicopy.cli.context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "submit",
        parents=[common],
        help="send copy jobs to the job queue",
        description="Check every job with the model the queue consumer uses, give a job ID to each job without "
        "one, then send them to the job queue and print their job IDs (one per line). If any job is invalid, "
        "nothing is sent (unless --skip-invalid) and each problem is named with where the job came from.",
    )
    planning.add_sources(p)
    p.add_argument("--skip-invalid", action="store_true", help="send the valid jobs even if some are invalid")
    p.add_argument("--dry-run", action="store_true", help="send nothing; show what each job would do (as plan)")
    watching.add_follow_options(p, wait="then follow the jobs until they end (as watch)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, context: Context) -> int:
    stack, out = context.stack, context.out
    jobs = check_jobs(read_sources(args.sources, stack, context.stdin), stack.now())
    invalid = [j for j in jobs if j.problem is not None]
    if args.dry_run:
        return planning.show_plans(context, jobs, full=False)
    for j in invalid:
        out.note(f"invalid job ({j.where}{', jobId ' + j.job_id if j.job_id else ''}): {j.problem}")
    if invalid and not args.skip_invalid:
        out.note(f"nothing sent: {len(invalid)} of {len(jobs)} job(s) invalid (--skip-invalid sends the others)")
        out.result(_result(jobs, []), None)
        return 1
    sent = send(context, jobs)
    if out.as_json:
        out.json(_result(jobs, sent), indent=None if args.wait else 2)
    else:
        for s in sent:
            if s.error is None:
                out.line(s.job_id)
    if any(s.error for s in sent):
        return 1
    return watching.follow(context, args, [s.job_id for s in sent])


def send(context: Context, jobs: Sequence[CheckedJob]) -> list[Sent]:
    """Send the valid jobs to the job queue, saying on stderr what was sent and what SQS refused."""
    sent = send_jobs(context.stack, jobs)
    for s in sent:
        if s.error:
            context.out.note(f"not sent ({s.where}, jobId {s.job_id}): {s.error}")
    accepted = sum(1 for s in sent if s.error is None)
    context.out.note(f"sent {accepted} of {len(sent)} job(s) to {context.stack.job_queue_url}")
    return sent


def _result(jobs: Sequence[CheckedJob], sent: Sequence[Sent]) -> dict[str, object]:
    return {
        "sent": [s.as_json() for s in sent],
        "invalid": [j.as_json() for j in jobs if j.problem is not None],
    }
