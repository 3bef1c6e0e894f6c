"""Terminal output for the demo and the ``run-job`` CLI: live progress lines, compact events, the summary table."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from hicopy.contract import OUTCOME_STATUS
from offline.runtime.inspection import ExecutionInfo
from offline.runtime.lambdas import Invocation
from offline.runtime.progress import Progress
from offline.runtime.runtime import LocalRuntime


def _job_of_invocation(inv: Invocation) -> str | None:
    event = inv.event if isinstance(inv.event, dict) else {}
    state = event.get("state")
    job = state.get("job") if isinstance(state, dict) else None
    job_id = job.get("jobId") if isinstance(job, dict) else None
    return job_id if isinstance(job_id, str) else None


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class ProgressPrinter:
    """A ``LocalRuntime(progress=...)`` callback printing one line per step, labelled with the job it belongs to."""

    def __init__(self, out: TextIO | None = None, *, label: Callable[[str], str] | None = None) -> None:
        self.out = out or sys.stdout
        self.label = label or (lambda job_id: job_id)
        self._lock = threading.Lock()
        self._exec_jobs: dict[str, str] = {}
        self.enabled = True

    def line(self, at: float, who: str, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.out.write(f"  [{at:6.2f}s] {who[:22]:<22} {text}\n")
            self.out.flush()

    def __call__(self, p: Progress) -> None:
        data = p.data
        if p.kind == "sqs.receive":  # before the function runs: what it causes prints after
            self.line(p.at, "job queue", f"SQS batch of {data['received']} -> {data['function']}")
        elif p.kind == "sqs.batch":
            batch = data["batch"]
            if batch.failed:
                self.line(p.at, "job queue", f"{len(batch.failed)} of {batch.received} failed -> retried or redriven")
        elif p.kind == "execution.start":
            job = data.get("name", "?")
            self._exec_jobs[data["arn"]] = job
            self.line(p.at, self.label(job), "execution started")
        elif p.kind == "execution.state":
            job = self._exec_jobs.get(data["arn"], "?")
            self.line(p.at, self.label(job), f"-> {data['state']}")
        elif p.kind == "execution.end":
            job = self._exec_jobs.get(data["arn"], "?")
            self.line(p.at, self.label(job), f"execution {data['status']}")
        elif p.kind == "lambda":
            self._invocation(p.at, data["invocation"])
        elif p.kind == "event.published":
            event = data["event"]
            detail = event.get("detail") or {}
            who = detail.get("jobId") or detail.get("importJobId") or "bus"
            self.line(p.at, self.label(str(who)), f"event on {data['bus']}: {event['detail-type']}")
        elif p.kind == "service.event":
            event = data["event"]
            detail = event.get("detail") or {}
            ref = detail.get("imageSetId") or detail.get("jobId") or ""
            self.line(p.at, "HealthImaging", f"{event['detail-type']} {str(ref)[:8]}")

    def _invocation(self, at: float, inv: Invocation) -> None:
        if inv.construct_id == "ImportPlanner":
            event = inv.event if isinstance(inv.event, dict) else {}
            detail = event.get("detail") or {}
            what = f"{event.get('detail-type', '?')} {str(detail.get('jobId', '?'))[:8]}"
            if not inv.ok:
                result = f"{inv.error_type}: {inv.error_message} (async retry)"
            elif isinstance(inv.result, dict) and isinstance(inv.result.get("planned"), list):
                result = f"planned {len(inv.result['planned'])} copy job(s)"
                result += " (duplicate event)" if inv.result.get("duplicate") else ""
            else:
                result = str(inv.result)
            self.line(at, "import planner", _short(f"{what}: {result}"))
            return
        if inv.ok:
            awaiting = inv.result.get("awaiting") if isinstance(inv.result, dict) else None
            if inv.construct_id == "AwaitCopy" and isinstance(awaiting, dict):
                job = _job_of_invocation(inv) or "?"
                wait = f"up to {awaiting.get('waitSeconds')} s (backoff + full jitter), or until the copy event"
                self.line(at, self.label(job), f"AwaitCopy: still copying -> wait {wait}")
            return
        job = _job_of_invocation(inv) or "?"
        if inv.error_type == "CopyStillInProgress":
            self.line(at, self.label(job), f"{inv.construct_id}: still copying, wait budget spent")
        else:
            self.line(at, self.label(job), _short(f"{inv.construct_id} raised {inv.error_type}: {inv.error_message}"))


def compact(event: dict[str, Any]) -> str:
    return json.dumps(
        {"detail-type": event["detail-type"], "source": event["source"], "detail": event["detail"]},
        separators=(",", ":"),
    )


@dataclass
class Row:
    job: str
    trigger: str
    outcome: str
    chunks: str
    checks: str
    real: str
    virtual: str
    note: str = ""


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    try:
        start = datetime.fromisoformat(a.replace("Z", "+00:00"))
        end = datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()


def summary_rows(rt: LocalRuntime, label: Callable[[str], str] | None = None) -> list[Row]:
    label = label or (lambda job_id: job_id)
    executions: dict[str, ExecutionInfo] = {e.arn: e for e in rt.executions()}
    rows = []
    for event in rt.completion_events():
        if event["detail-type"] not in OUTCOME_STATUS:
            continue
        d = event["detail"]
        job = str(d.get("jobId") or "-")
        execution = executions.get(str(d.get("executionArn")))
        real = (
            f"{(execution.stop - execution.start).total_seconds():.2f}s"
            if execution is not None and execution.stop is not None
            else "-"
        )
        virtual = _seconds(d.get("receivedAt"), d.get("completedAt"))
        rows.append(
            Row(
                job=label(job),
                trigger=str((d.get("trigger") or {}).get("type", "-")),
                outcome=OUTCOME_STATUS[event["detail-type"]],
                chunks=str(d.get("chunks", "-")),
                checks=str(d.get("statusChecks", "-")),
                real=real,
                virtual=f"{virtual:.0f}s" if virtual is not None else "-",
                note=_short(str((d.get("reason") or {}).get("message", "")), 60),
            )
        )
    return rows


def table(rows: Sequence[Row], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    headers = ("job", "trigger", "outcome", "chunks", "status checks", "duration", "(virtual)", "reason")
    cells = [headers] + [(r.job, r.trigger, r.outcome, r.chunks, r.checks, r.real, r.virtual, r.note) for r in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        out.write("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            out.write("  " + "  ".join("-" * w for w in widths) + "\n")
