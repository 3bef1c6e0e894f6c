"""``hicopy status JOB_ID`` (one job in detail) and ``hicopy list`` (recent jobs, from ListExecutions)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hicopy.cli.executions import RUNNING, SUCCEEDED, describe, read_status
from hicopy.cli.output import UsageError, duration, table, timestamp
from hicopy.cli.stack import Stack

if TYPE_CHECKING:
    from hicopy.cli.context import Context

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since(text: str, now: float) -> float:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time; seconds since the epoch."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--since {text!r}: expected e.g. 30m, 2h, 7d or 2026-11-27T10:00:00Z") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def list_executions(stack: Stack, *, status: str | None, after: float | None, limit: int) -> list[dict[str, Any]]:
    """The newest executions first, at most ``limit``, started at or after ``after``."""
    kwargs: dict[str, Any] = {"stateMachineArn": stack.state_machine_arn}
    if status:
        kwargs["statusFilter"] = status
    found: list[dict[str, Any]] = []
    pages = (
        stack.client("stepfunctions")
        .get_paginator("list_executions")
        .paginate(**kwargs, PaginationConfig={"PageSize": max(1, min(limit, 1000))})
    )
    for page in pages:  # newest first
        found.extend(page["executions"])
        older = after is not None and any(e["startDate"].timestamp() < after for e in page["executions"])
        if len(found) >= limit or older:
            break
    found.sort(key=lambda e: e["startDate"], reverse=True)
    if after is not None:
        found = [e for e in found if e["startDate"].timestamp() >= after]
    return found[:limit]


def _row(e: dict[str, Any], now: float) -> dict[str, Any]:
    stop = e.get("stopDate")
    end = stop.timestamp() if stop is not None else now
    return {
        "jobId": e["name"],
        "status": e["status"],
        "startedAt": timestamp(e["startDate"]),
        "stoppedAt": timestamp(stop),
        "durationSeconds": round(end - e["startDate"].timestamp(), 3),
        "executionArn": e["executionArn"],
    }


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="one job's state, step, chunks, status checks and outcome",
        description="A job's state, current step, chunk k of n and status checks so far; for a finished job its "
        "outcome and the reason it failed (read from its execution, named by the job ID). Exit code 0 if the job "
        "is running or succeeded, 1 if it failed or has no execution.",
    )
    p.add_argument("job_id", metavar="JOB_ID")
    p.set_defaults(run=run_status)

    p = sub.add_parser(
        "list",
        parents=[common],
        help="recent jobs by status and time",
        description="Recent jobs (executions), newest first, with a count per status.",
    )
    p.add_argument("--status", choices=STATUSES, type=str.upper, help="only jobs in this state")
    p.add_argument("--since", metavar="WHEN", help="only jobs started since, e.g. 30m, 2h, 7d or an ISO 8601 time")
    p.add_argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    p.set_defaults(run=run_list)


def run_status(args: argparse.Namespace, context: Context) -> int:
    status = read_status(context.stack, args.job_id)
    now = context.stack.now()
    context.out.result(status.as_json(), describe(status, now))
    return 0 if status.status in (RUNNING, SUCCEEDED) else 1


def run_list(args: argparse.Namespace, context: Context) -> int:
    stack = context.stack
    now = stack.now()
    after = since(args.since, now) if args.since else None
    rows = [_row(e, now) for e in list_executions(stack, status=args.status, after=after, limit=args.limit)]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    text = f"{len(rows)} job(s)"
    if rows:
        text += ": " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + "\n"
        text += table(
            ["JOB ID", "STATUS", "STARTED", "DURATION"],
            [[r["jobId"], r["status"], r["startedAt"], duration(r["durationSeconds"])] for r in rows],
        )
    context.out.result({"counts": counts, "jobs": rows}, text)
    return 0
