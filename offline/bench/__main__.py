"""``python -m offline.bench`` (what ``make bench`` runs). ``--help`` for the options."""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from offline.bench.metrics import Metrics, compute, targets
from offline.bench.policies import DEFAULT_POLICIES, POLICIES
from offline.bench.report import (
    DIAG_HEADER,
    MAIN_HEADER,
    chart,
    diag_rows,
    main_rows,
    markdown,
    readme_with_table,
    results_json,
    targets_text,
    text_table,
    write_json,
)
from offline.bench.run import RunRecord, run_policy
from offline.bench.workload import DurationDistribution, jobs

DEFAULT_BACKLOGS = (1, 50, 500)
QUICK_BACKLOGS = (1, 10, 40)
# Real seconds per virtual second. The runtime does each handler call's ~25 ms of real CPU on one core: at 0.1 that
# is 0.25 virtual s a call, and a 500-job backlog keeps the core busy most of the time, so the runtime's own queueing
# makes calls late. At 0.25 it stays under a third busy (see docs/bench-analysis.md).
DEFAULT_SCALE = 0.25
DEFAULT_SEED = 1
REPO = Path(__file__).resolve().parents[2]


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def _policies(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown policies {unknown}; choose from {sorted(POLICIES)}")
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m offline.bench",
        description="Throughput benchmark on the local runtime: the shipped policy against a naive policy.",
    )
    p.add_argument("--backlogs", type=_ints, default=None, help="backlog sizes (default 1,50,500)")
    p.add_argument("--quick", action="store_true", help=f"small backlogs {','.join(map(str, QUICK_BACKLOGS))}")
    p.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        help=f"real seconds per virtual second (default {DEFAULT_SCALE}: {1 / DEFAULT_SCALE:g}x faster than real time)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the job set and copy durations")
    p.add_argument(
        "--policies",
        type=_policies,
        default=DEFAULT_POLICIES,
        help=f"policies to run, in order (default {','.join(DEFAULT_POLICIES)})",
    )
    p.add_argument("--out", type=Path, default=REPO / "bench-results", help="output directory (default bench-results)")
    p.add_argument(
        "--update-docs",
        action="store_true",
        help="also copy the results to docs/bench-results.md and docs/bench-throughput.png, and the table into "
        "README.md",
    )
    p.add_argument("--timeout", type=float, default=None, help="real seconds allowed per run (default: from backlog)")
    args = p.parse_args(argv)
    if args.backlogs is None:
        args.backlogs = QUICK_BACKLOGS if args.quick else DEFAULT_BACKLOGS
    if not 0 < args.scale <= 1:
        p.error("--scale must be in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    distribution = DurationDistribution()
    command = "python -m offline.bench" + "".join(" " + shlex.quote(a) for a in _result_args(argv))
    print(
        f"{command}\n"
        f"policies {', '.join(args.policies)}; backlogs {', '.join(map(str, args.backlogs))}; time scale "
        f"{args.scale:g}; seed {args.seed}; copy durations {distribution.describe()}",
        flush=True,
    )
    code_at_start = _code_version()
    t0 = time.monotonic()
    runs: list[RunRecord] = []
    metrics: list[Metrics] = []
    for backlog in args.backlogs:
        job_set = jobs(backlog, seed=args.seed, distribution=distribution)
        for name in args.policies:
            t = time.monotonic()
            run = run_policy(
                POLICIES[name],
                job_set,
                time_scale=args.scale,
                seed=args.seed,
                distribution=distribution,
                timeout=args.timeout,
                progress=True,
            )
            m = compute(run)
            runs.append(run)
            metrics.append(m)
            print(
                f"  [{name} x{backlog}] {m.succeeded} succeeded, {m.failed + m.unfinished} failed, "
                f"{m.copy_calls} CopyImageSet calls ({m.throttled_calls} throttled); "
                f"{run.virtual_seconds:.0f} virtual s in {run.real_seconds:.0f} s real "
                f"(+{run.startup_seconds:.1f} s start-up), {time.monotonic() - t:.0f} s in all",
                flush=True,
            )
    total = time.monotonic() - t0
    rate = runs[0].rate
    config: dict[str, Any] = {
        "command": command,
        "policies": {n: POLICIES[n].description for n in args.policies},
        "backlogs": list(args.backlogs),
        "time_scale": args.scale,
        "seed": args.seed,
        "rate": rate,
        "burst": runs[0].burst,
        "quota_per_hour": rate * 3600,
        "distribution": distribution.to_json(),
        "distribution_text": distribution.describe(),
        "total_real_seconds": total,
        "machine": f"{platform.machine()}, {_cpus()} CPU(s), Python {platform.python_version()}",
        "max_load_average": max(max(r.load_average) for r in runs),
        "code": code_at_start if _code_version() == code_at_start else f"changed during the run ({code_at_start}..)",
    }
    print()
    print(text_table(MAIN_HEADER, main_rows(metrics)))
    print()
    print(text_table(DIAG_HEADER, diag_rows(metrics, runs)))
    checked = targets(metrics)
    if checked:
        print("\ntargets (issue #6):\n" + targets_text(metrics))
    print(f"\nwhole benchmark: {total:.0f} s real")
    if config["max_load_average"] > _cpus() - 0.5:
        print(
            f"note: the machine's load average reached {config['max_load_average']:.1f} on {_cpus()} CPU(s): other "
            "processes competed with the runtime, which makes calls late (see the diagnostics); rerun on a quiet "
            "machine for reference figures"
        )

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(config, metrics, runs)
    (out / "results.md").write_text(md)
    write_json(out / "results.json", results_json(config, metrics, runs))
    chart_backlog = max(args.backlogs)
    png = out / "throughput.png"
    drawn = chart(png, runs, backlog=chart_backlog, rate=rate, title_note=f" (time scale {args.scale:g})")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}" + (f", {png}" if drawn else ""))
    if args.update_docs:
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "bench-results.md").write_text(md)
        if drawn:
            shutil.copyfile(png, docs / "bench-throughput.png")
        readme = REPO / "README.md"
        readme.write_text(readme_with_table(readme.read_text(), config, metrics))
        print(
            f"updated {docs / 'bench-results.md'}"
            + (f", {docs / 'bench-throughput.png'}" if drawn else "")
            + f" and the table in {readme}"
        )
    return 0 if all(t.met for t in checked) else 1


def _result_args(argv: list[str]) -> list[str]:
    """The arguments that shape the results (output locations and ``--update-docs`` left out)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--update-docs":
            continue
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            out.append(arg)
    return out


def _code_version() -> str:
    """The commit the measured code comes from, "+changes" if ``functions/`` or ``infra/`` differ from it."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "functions", "infra", "app.py", "cdk.json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
