"""Tables (plain text and Markdown), the JSON results file and the chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from offline.bench.metrics import TARGET_BACKLOG, Metrics, targets
from offline.bench.run import RunRecord


def _num(value: float | None, fmt: str = ".0f") -> str:
    return "-" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _reasons(m: Metrics) -> str:
    if not m.failure_reasons:
        return "0"
    inner = ", ".join(f"{k} {v}" for k, v in sorted(m.failure_reasons.items()))
    return f"{m.failed + m.unfinished} ({inner})"


MAIN_HEADER = (
    "backlog",
    "policy",
    "sustained rate (of quota)",
    "copies/h",
    "of quota",
    "CopyImageSet calls/copy",
    "throttled calls",
    "jobs failed",
    "status checks/copy",
    "transitions/copy",
    "lag p50 / p95 / max (s)",
)
DIAG_HEADER = (
    "backlog",
    "policy",
    "min call spacing (s)",
    "slots missed",
    "call - slot p50 / p95 / max (s)",
    "Submit start - slot p50 / p95 (s)",
    "start-up burst (s)",
    "after it: call - slot p50 / p95 (s)",
    "throttled after it",
    "span (s)",
    "virtual / real (s)",
    "CPU (s)",
    "load avg",
)


def main_rows(metrics: Sequence[Metrics]) -> list[tuple[str, ...]]:
    return [
        (
            str(m.backlog),
            m.policy,
            _pct(m.accepted_call_rate_fraction),
            _num(m.copies_per_hour),
            _pct(m.quota_fraction),
            _num(m.calls_per_copy, ".2f"),
            str(m.throttled_calls),
            _reasons(m),
            _num(m.status_checks_per_copy, ".1f"),
            _num(m.transitions_per_copy, ".1f"),
            f"{_num(m.lag_p50)} / {_num(m.lag_p95)} / {_num(m.lag_max)}",
        )
        for m in metrics
    ]


def diag_rows(metrics: Sequence[Metrics], runs: Sequence[RunRecord]) -> list[tuple[str, ...]]:
    cpu = {(r.policy, r.backlog): r.cpu_seconds for r in runs}
    load = {(r.policy, r.backlog): max(r.load_average) for r in runs}
    return [
        (
            str(m.backlog),
            m.policy,
            _num(m.min_call_spacing, ".2f"),
            str(m.slots_missed) if m.startup_end is not None else "-",
            f"{_num(m.lateness_p50, '.2f')} / {_num(m.lateness_p95, '.2f')} / {_num(m.lateness_max, '.2f')}",
            f"{_num(m.submit_start_p50, '.2f')} / {_num(m.submit_start_p95, '.2f')}",
            _num(m.startup_end),
            f"{_num(m.steady_lateness_p50, '.2f')} / {_num(m.steady_lateness_p95, '.2f')}",
            str(m.steady_throttled) if m.startup_end is not None else "-",
            _num(m.span_seconds),
            f"{m.virtual_seconds:.0f} / {m.real_seconds:.0f}",
            _num(cpu.get((m.policy, m.backlog)), ".0f"),
            _num(load.get((m.policy, m.backlog)), ".1f"),
        )
        for m in metrics
    ]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def markdown(config: dict[str, Any], metrics: Sequence[Metrics], runs: Sequence[RunRecord]) -> str:
    return "\n".join(
        [
            "# Throughput benchmark results",
            "",
            f"Command: `{config['command']}`",
            "",
            f"Local runtime (moto + in-process handlers + HealthImaging emulator), time scale {config['time_scale']:g} "
            f"(1 virtual second = {config['time_scale'] * 1000:g} ms real), seed {config['seed']}, code "
            f"{config.get('code', 'unknown')}, "
            f"{config.get('machine', 'this machine')}, whole run {config.get('total_real_seconds', 0):.0f} s real, "
            f"highest load average {config.get('max_load_average', 0):.1f}. "
            f"CopyImageSet quota {config['rate']:g}/s (burst {config['burst']}) = {config['quota_per_hour']:.0f} "
            f"copies/h. Copy durations: {config['distribution_text']}. Every job is one CopyImageSet of its own "
            "image set; the backlog is started all at once. All times are virtual seconds.",
            "",
            markdown_table(MAIN_HEADER, main_rows(metrics)),
            "",
            "Pacing diagnostics:",
            "",
            markdown_table(DIAG_HEADER, diag_rows(metrics, runs)),
            "",
            *_targets_lines(metrics),
            "How to read it: *sustained rate* is accepted CopyImageSet calls per hour between the first and the last "
            "accepted call, against the quota (rate x 3600): the rate the backlog was worked off at. *copies/h* "
            "counts successful copies over the span from the first CopyImageSet call to the last completion event, "
            "so it also counts the drain at the end (the last copies' duration and status checks: about 150 s "
            "at a 500-job backlog); *of quota* divides it by rate x 3600. *CopyImageSet calls/copy* counts every "
            "call the service received (throttled ones included) per successful copy. *status checks* are AwaitCopy "
            "GetImageSet calls; *transitions* are Step Functions state transitions as billed (states entered + "
            "retries), per successful copy. *lag* runs from the moment the emulator finished a copy to the "
            "completion event's `completedAt`. Diagnostics: *slots missed* counts the calls that were more than "
            "30 s behind the account's turns and took a new slot (`SlotMissed`); *call - slot* is how late each "
            "job's first CopyImageSet call came after the slot Pace reserved for it; *Submit start - slot* is when "
            "that Submit made its first read, relative to the slot (negative: it started early enough to sleep to "
            "its slot; positive: the Wait's end, the state transition or the Lambda start overran the slot). "
            "*CPU* is this process's CPU time during the run and *load avg* the machine's "
            "highest 1-minute load average at its start or end: the runtime runs on one core (GIL), so other load "
            "on the machine delays handlers and shows up as lateness. The *start-up burst* ends when Pace granted "
            "the last job of the backlog its slot: until then every execution's Prepare and Pace queue up behind "
            "the local runtime's one handler lock, which delays the Submits of the first slots; the next columns "
            "cover the calls after it.",
            "",
        ]
    )


def _targets_lines(metrics: Sequence[Metrics]) -> list[str]:
    checked = targets(metrics)
    if not checked:
        return []
    backlog = max(m.backlog for m in metrics if m.backlog >= TARGET_BACKLOG)
    items = "; ".join(f"{t.name} {t.measured} (target {t.target}): {'met' if t.met else 'MISSED'}" for t in checked)
    return [f"Targets (issues #6 and #15) at a backlog of {backlog}: {items}.", ""]


def targets_text(metrics: Sequence[Metrics]) -> str:
    """One line per target, for the console."""
    return "\n".join(
        f"  {'met   ' if t.met else 'MISSED'}  {t.name}: {t.measured} (target {t.target})" for t in targets(metrics)
    )


README_BEGIN = "<!-- bench-table: written by python -m offline.bench --update-docs -->"
README_END = "<!-- /bench-table -->"


def readme_table(config: dict[str, Any], metrics: Sequence[Metrics]) -> str:
    """What the README shows of a run: the command, the main table and the targets."""
    return "\n".join(
        [
            f"Command: `{config['command']}` (code {config.get('code', 'unknown')}, time scale "
            f"{config['time_scale']:g}, {config.get('machine', 'this machine')}, "
            f"{config.get('total_real_seconds', 0) / 60:.0f} min).",
            "",
            markdown_table(MAIN_HEADER, main_rows(metrics)),
            "",
            *_targets_lines(metrics),
        ]
    ).rstrip()


def readme_with_table(readme: str, config: dict[str, Any], metrics: Sequence[Metrics]) -> str:
    """``readme`` with the text between the bench-table markers replaced by this run's table."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README.md has no {README_BEGIN!r} ... {README_END!r} block")
    head = readme[: begin + len(README_BEGIN)]
    return head + "\n" + readme_table(config, metrics) + "\n" + readme[end:]


def results_json(config: dict[str, Any], metrics: Sequence[Metrics], runs: Sequence[RunRecord]) -> dict[str, Any]:
    return {
        "config": config,
        "metrics": [m.to_json() for m in metrics],
        "runs": [
            {
                "policy": r.policy,
                "backlog": r.backlog,
                "timed_out": r.timed_out,
                "real_seconds": r.real_seconds,
                "virtual_seconds": r.virtual_seconds,
                "cpu_seconds": r.cpu_seconds,
                "load_average": list(r.load_average),
                "startup_seconds": r.startup_seconds,
                "state_machine_arn": r.state_machine_arn,
                "definition": r.definition,
                "calls": [asdict(c) for c in r.calls],
                "jobs": [asdict(j) for j in r.jobs],
            }
            for r in runs
        ],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")


COLORS = {"shipped": "tab:blue", "naive": "tab:red"}


def chart(path: Path, runs: Sequence[RunRecord], *, backlog: int, rate: float, title_note: str = "") -> bool:
    """Completed copies over virtual time (from the moment the backlog was started), one line per policy, for
    ``backlog``; the quota as a dashed line. Returns False if no run has that backlog."""
    selected = [r for r in runs if r.backlog == backlog]
    if not selected:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    horizon = 0.0
    for r in selected:
        color = COLORS.get(r.policy)
        done = sorted(j.completed_at for j in r.jobs if j.status == "SUCCEEDED" and j.completed_at is not None)
        failed = sorted(j.completed_at for j in r.jobs if j.status == "FAILED" and j.completed_at is not None)
        if done:
            xs = [0.0] + [t / 60 for t in done]
            ys = list(range(len(done) + 1))
            ax.step(xs, ys, where="post", color=color, lw=2, label=f"{r.policy}: succeeded ({len(done)})")
            horizon = max(horizon, done[-1])
        if failed:
            xs = [0.0] + [t / 60 for t in failed]
            ys = list(range(len(failed) + 1))
            ax.step(xs, ys, where="post", color=color, lw=1, ls=":", label=f"{r.policy}: failed ({len(failed)})")
            horizon = max(horizon, failed[-1])
    firsts = [
        min(j.completed_at for j in r.jobs if j.status == "SUCCEEDED" and j.completed_at is not None)
        for r in selected
        if any(j.status == "SUCCEEDED" and j.completed_at is not None for j in r.jobs)
    ]
    if firsts:
        start = min(firsts)
        end = max(horizon, start + 1)
        ax.plot(
            [start / 60, end / 60],
            [1, 1 + rate * (end - start)],
            color="grey",
            ls="--",
            lw=1,
            label=f"quota slope: {rate:g} CopyImageSet/s = {rate * 3600:.0f} copies/h",
        )
    ax.set_xlabel("virtual time since the backlog was started (minutes)")
    ax.set_ylabel("completed copies")
    ax.set_title(f"Completed copies over time, backlog of {backlog} jobs{title_note}")
    ax.set_ylim(0, backlog * 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
