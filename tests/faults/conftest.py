"""The fault-injection suite's session summary: every scenario appends its counts (``harness.record``); at the end
of the session the counts are summed into ``build/fault-injection/summary.json`` and printed.

Records are files under ``build/fault-injection/records``; a session sums those written since it started (pytest-xdist
workers inherit the controller's start time through ``HICOPY_FAULTS_STARTED``). Each worker writes the summary when it
finishes (the last one has every record); the terminal summary is printed when the controller loads this conftest
(``pytest tests/faults ...``; a bare ``pytest -n 2`` from the root does not, the JSON file is still written).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import RECORDS, SOAK, SUMMARY_DIR

STALE_SECONDS = 3600.0


_STARTED = time.time()


def pytest_configure(config: pytest.Config) -> None:
    global _STARTED  # noqa: PLW0603 - the session's start, shared by the hooks below
    _STARTED = float(os.environ.setdefault("HICOPY_FAULTS_STARTED", repr(time.time())))
    if RECORDS.is_dir():  # forget the records of earlier sessions (not a concurrent one's)
        for old in RECORDS.iterdir():
            with contextlib.suppress(FileNotFoundError):  # another worker (or a soak) removed it meanwhile
                if time.time() - old.stat().st_mtime > STALE_SECONDS:
                    old.unlink(missing_ok=True)
    # A Lambda invocation that ends before adding a metric makes Powertools warn at flush; in AWS that is a log line.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")


def summarize() -> dict[str, Any] | None:
    """Sum the records written since this session started (workers inherit the controller's start time)."""
    if not RECORDS.is_dir():
        return None
    records = []
    for path in sorted(RECORDS.glob("*.json")):
        with contextlib.suppress(FileNotFoundError):  # removed by a concurrent session's clean-up
            if path.stat().st_mtime >= _STARTED:
                records.append(json.loads(path.read_text()))
    if not records:
        return None
    total: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    seconds: dict[str, float] = {}
    for r in records:
        counts = Counter(r["counts"])
        counts["runs"] = 1
        counts["violations"] = len(r["violations"])
        total.update(counts)
        by_kind.setdefault(r["kind"], Counter()).update(counts)
        seconds[r["kind"]] = seconds.get(r["kind"], 0.0) + r["seconds"]
    faults = sum(n for k, n in total.items() if k.startswith("fault:"))
    summary = {
        "soak": SOAK,
        "runs": total["runs"],
        "jobs": total["jobs"],
        "messages": total["messages"],
        "faults_injected": faults,
        "violations": total["violations"],
        "expected_violations": sum(len(r["violations"]) for r in records if r["expected"] != "ok"),
        "outcomes": {k.split(":", 1)[1]: n for k, n in sorted(total.items()) if k.startswith("outcome:")},
        "by_kind": {
            kind: {
                "runs": c["runs"],
                "jobs": c["jobs"],
                "faults_injected": sum(n for k, n in c.items() if k.startswith("fault:")),
                "violations": c["violations"],
                "seconds_in_run_until_idle": round(seconds[kind], 2),
                "detail": dict(sorted(c.items())),
            }
            for kind, c in sorted(by_kind.items())
        },
    }
    (SUMMARY_DIR / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def pytest_sessionfinish(session: pytest.Session) -> None:
    summarize()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summary = summarize()
    if summary is None:
        return
    tr = terminalreporter
    tr.section("fault injection")
    tr.write_line(
        f"runs={summary['runs']} jobs={summary['jobs']} messages={summary['messages']} "
        f"faults injected={summary['faults_injected']} violations={summary['violations']} "
        f"(expected, xfail: {summary['expected_violations']}) soak={summary['soak']}"
    )
    tr.write_line(f"outcomes: {summary['outcomes']}")
    for kind, c in summary["by_kind"].items():
        tr.write_line(
            f"  {kind:28} runs={c['runs']:3} jobs={c['jobs']:4} faults={c['faults_injected']:4} "
            f"violations={c['violations']} ({c['seconds_in_run_until_idle']}s)"
        )
    tr.write_line(f"written to {Path(SUMMARY_DIR / 'summary.json')}")
