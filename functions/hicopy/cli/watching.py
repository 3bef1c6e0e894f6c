"""``hicopy watch``: follow jobs until they end, with a line per job (redrawn in place on a terminal)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from hicopy.cli.executions import SUCCEEDED, JobStatus, read_status
from hicopy.cli.output import Output
from hicopy.cli.stack import Stack

if TYPE_CHECKING:
    from hicopy.cli.context import Context

DEFAULT_INTERVAL = 5.0


class Display(Protocol):
    def update(self, statuses: Sequence[JobStatus], now: float) -> None: ...

    def close(self) -> None: ...


class LiveDisplay:
    """A terminal: one line per job plus a summary line, redrawn in place."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.drawn = 0

    def update(self, statuses: Sequence[JobStatus], now: float) -> None:
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)  # never wrap: the redraw counts lines
        lines = [_summary(statuses)] + [s.line(now) for s in statuses]
        text = "".join(f"\r\x1b[2K{line[:width]}\n" for line in lines)
        up = f"\x1b[{self.drawn}A" if self.drawn else ""
        self.out.stream.write(up + text)
        self.out.stream.flush()
        self.drawn = len(lines)

    def close(self) -> None:
        self.drawn = 0


class LineDisplay:
    """Not a terminal (a log, a pipe): a line each time a job's progress changes; JSON Lines with ``--json``."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.seen: dict[str, tuple[object, ...]] = {}

    def update(self, statuses: Sequence[JobStatus], now: float) -> None:
        for status in statuses:
            key = status.progress_key()
            if self.seen.get(status.job_id) == key:
                continue
            self.seen[status.job_id] = key
            if self.out.as_json:
                self.out.json(status.as_json())
            else:
                self.out.line(status.line(now))

    def close(self) -> None:
        pass


def _summary(statuses: Sequence[JobStatus]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.status] = counts.get(s.status, 0) + 1
    return f"{len(statuses)} job(s): " + ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))


def watch(stack: Stack, out: Output, job_ids: Sequence[str], *, interval: float, timeout: float | None) -> int:
    """Poll until every job has ended; 0 only if every one succeeded (1 on a failure or at the timeout)."""
    display: Display = LiveDisplay(out) if out.is_tty and not out.as_json else LineDisplay(out)
    ids = list(dict.fromkeys(job_ids))
    statuses: dict[str, JobStatus] = {}
    deadline = stack.now() + timeout if timeout else None
    while True:
        for job_id in ids:
            if job_id not in statuses or not statuses[job_id].finished:
                statuses[job_id] = read_status(stack, job_id)
        current = [statuses[j] for j in ids]
        display.update(current, stack.now())
        if all(s.finished for s in current):
            break
        if deadline is not None and stack.now() >= deadline:
            display.close()
            waiting = [s.job_id for s in current if not s.finished]
            out.note(f"hicopy: gave up after {timeout:g} s; not finished: {', '.join(waiting)}")
            return 1
        stack.sleep(interval)
    display.close()
    failed = [s for s in current if s.status != SUCCEEDED]
    out.note(f"{len(current) - len(failed)} of {len(current)} job(s) succeeded")
    return 0 if not failed else 1


def add_follow_options(p: argparse.ArgumentParser, *, wait: str | None = None) -> None:
    """``--interval`` and ``--timeout``; with ``wait``, also ``--wait`` (its help text)."""
    if wait is not None:
        p.add_argument("--wait", action="store_true", help=wait)
    p.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL, help=f"seconds between polls (default {DEFAULT_INTERVAL:g})"
    )
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit code 1)")


def follow(context: Context, args: argparse.Namespace, job_ids: Sequence[str]) -> int:
    """After sending: follow the jobs with ``--wait`` (the exit code of ``watch``), else 0."""
    if not args.wait:
        return 0
    return watch(context.stack, context.out, job_ids, interval=args.interval, timeout=args.timeout)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "watch",
        parents=[common],
        help="follow jobs until they end",
        description="Follow jobs until each has ended: its state, current step, chunk k of n and status checks. On a "
        "terminal the lines are redrawn in place; otherwise a line is printed each time a job's progress changes "
        "(JSON Lines with --json). Exit code 0 only if every job succeeded.",
    )
    p.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    add_follow_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, context: Context) -> int:
    return watch(context.stack, context.out, args.job_ids, interval=args.interval, timeout=args.timeout)
