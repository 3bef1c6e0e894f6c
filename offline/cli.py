"""``python -m offline``: run your own copy jobs against the embedded local runtime (no AWS account, no Docker).

Commands:

``run-job JOB_FILE [--seed] [--via sqs|event] ...``
    Deploys the stack locally, sends every job of ``JOB_FILE`` (one JSON job, or a JSON array of jobs) to the job
    queue (``--via sqs``, default) or as ``Copy Requested`` events on the custom bus (``--via event``), runs the
    pipeline until idle, prints progress, every completion event and a summary. Exit code 0 if every job
    succeeded, 1 if any failed or was rejected, 2 on a usage or runtime error.

    With ``--seed``, the emulator is first filled with demo data and ``${NAME}`` placeholders in the job file are
    replaced by its ids (see ``seed`` below), e.g.::

        {"datastoreId": "${DATASTORE_ID}",
         "source": {"imageSetId": "${SOURCE_IMAGE_SET_ID}"},
         "destination": {"imageSetId": "${DESTINATION_IMAGE_SET_ID}"},
         "instances": ["${INSTANCE_UID_1_1}", "${INSTANCE_UID_1_3}"]}

``seed [--seed-series N --seed-instances M --seed-frames F]``
    Prints the placeholders ``--seed`` defines and their values. The emulator's ids are seeded, so the same
    options give the same ids on every run: a job file may also use the printed values literally.

``demo``
    The scripted tour (same as ``python -m offline.demo``).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offline.runtime import LocalRuntime, Progress

SEED = 20240601  # the emulator's random seed: stable ids for the seeded demo data
PATIENT_ID = "PAT-LOCAL-0001"
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def seed_data(rt: LocalRuntime, *, series: int, instances: int, frames: int) -> dict[str, str]:
    """Seed a source image set, and a destination image set with the same Patient/Study elements holding two other
    instances of the source's first series (so copying series-1 instances into it merges without ``force``; other
    series need ``force``). Returns the placeholder values."""
    from offline.healthimaging.dicom import build_metadata

    src = rt.seed_image_set(
        series=series, instances_per_series=instances, frames_per_instance=frames, patient_id=PATIENT_ID
    )
    first = src.series_uids[0]
    # Its own random stream (not the emulator's, seeded with SEED): new SOP Instance UIDs that never collide.
    other = build_metadata(random.Random(SEED + 1), series_uids=[first], instances_per_series=2)
    metadata = copy.deepcopy(src.metadata)
    metadata.update(DatastoreID=None, ImageSetID=None)
    series_block = copy.deepcopy(src.metadata["Study"]["Series"][first])
    series_block["Instances"] = other["Study"]["Series"][first]["Instances"]
    metadata["Study"]["Series"] = {first: series_block}
    dst = rt.emulator.seed_image_set_from_metadata(rt.datastore_id, metadata, is_primary=False)
    values = {
        "DATASTORE_ID": rt.datastore_id,
        "SOURCE_IMAGE_SET_ID": src.image_set_id,
        "SOURCE_VERSION_ID": src.version_id,
        "DESTINATION_IMAGE_SET_ID": dst.image_set_id,
        "DESTINATION_VERSION_ID": dst.version_id,
        "STUDY_UID": src.study_uid,
        "PATIENT_ID": PATIENT_ID,
    }
    for s, series_uid in enumerate(src.series_uids, 1):
        values[f"SERIES_UID_{s}"] = series_uid
        for i, sop in enumerate(src.instances[series_uid], 1):
            values[f"INSTANCE_UID_{s}_{i}"] = sop
    return values


#: The placeholders ``--seed`` defines (``seed_data``); ``DATASTORE_ID`` is defined with or without it.
SEEDED_PLACEHOLDER = re.compile(
    r"(SOURCE_IMAGE_SET_ID|SOURCE_VERSION_ID|DESTINATION_IMAGE_SET_ID|DESTINATION_VERSION_ID|STUDY_UID|PATIENT_ID"
    r"|SERIES_UID_[1-9][0-9]*|INSTANCE_UID_[1-9][0-9]*_[1-9][0-9]*)"
)
ALWAYS_DEFINED = ("DATASTORE_ID",)


class PlaceholderError(ValueError):
    """A job file names placeholders that this run does not define (a usage error: exit code 2)."""


def check_placeholders(text: str, *, seeded: bool) -> None:
    """Refuse, before anything is deployed, placeholders this run cannot fill: the ones only ``--seed`` defines when
    it is not given, and the ones nothing defines."""
    names = set(PLACEHOLDER.findall(text))
    need_seed = sorted(n for n in names if SEEDED_PLACEHOLDER.fullmatch(n))
    unknown = sorted(n for n in names - set(need_seed) if n not in ALWAYS_DEFINED)
    problems = []
    if need_seed and not seeded:
        problems.append(f"placeholder(s) {', '.join(need_seed)} are filled only with --seed: add --seed")
    if unknown:
        problems.append(
            f"unknown placeholder(s) {', '.join(unknown)}; `python -m offline seed` lists the ones --seed defines"
        )
    if problems:
        raise PlaceholderError("; ".join(problems))


def substitute(text: str, values: dict[str, str]) -> str:
    unknown = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if unknown:  # e.g. INSTANCE_UID_1_9 when --seed-instances is 3
        raise PlaceholderError(
            f"placeholder(s) {', '.join(unknown)} not defined by this run; `python -m offline seed` (with the same "
            "--seed-* options) lists the ones it defines"
        )
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def load_jobs(path: Path, values: dict[str, str]) -> list[Any]:
    text = substitute(path.read_text(encoding="utf-8"), values)
    try:
        data = json.loads(text)
    except ValueError:
        return [text]  # not JSON: sent as is (the orchestrator rejects it, which is worth seeing)
    return data if isinstance(data, list) else [data]


def _runtime(args: argparse.Namespace, progress: Callable[[Progress], None] | None = None) -> LocalRuntime:
    from offline.runtime import LocalRuntime

    overrides: dict[str, Any] = {}
    for item in args.config or []:
        key, _, raw = item.partition("=")
        try:
            overrides[key] = json.loads(raw)
        except ValueError:
            overrides[key] = raw
    return LocalRuntime(
        time_scale=args.time_scale,
        copy_duration=args.copy_duration,
        config_overrides=overrides,
        progress=progress,
        emulator_options={"seed": SEED},
    )


def cmd_seed(args: argparse.Namespace) -> int:
    with _runtime(args) as rt:
        values = seed_data(rt, series=args.seed_series, instances=args.seed_instances, frames=args.seed_frames)
    width = max(len(k) for k in values)
    for key, value in values.items():
        print(f"${{{key}}}".ljust(width + 3), value)
    return 0


def cmd_run_job(args: argparse.Namespace) -> int:
    from hicopy.contract import COPY_REQUESTED, OUTCOME_STATUS, SUCCEEDED
    from offline.runtime.console import ProgressPrinter, summary_rows, table

    path = Path(args.job_file)
    if not path.is_file():
        print(f"no such job file: {path}", file=sys.stderr)
        return 2
    try:
        check_placeholders(path.read_text(encoding="utf-8"), seeded=args.seed)
    except PlaceholderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    printer = ProgressPrinter()
    printer.enabled = not args.quiet
    with _runtime(args, progress=printer) as rt:
        values = {"DATASTORE_ID": rt.datastore_id}
        if args.seed:
            values = seed_data(rt, series=args.seed_series, instances=args.seed_instances, frames=args.seed_frames)
            print("seeded (placeholders for the job file):")
            for key, value in values.items():
                print(f"  ${{{key}}} = {value}")
        try:
            jobs = load_jobs(path, values)
        except PlaceholderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for fault in args.fault or []:
            op, code, *times = fault.split(":")
            rt.emulator.inject_fault(op, code, int(times[0]) if times else 1)
        if args.fail_copy:
            rt.emulator.fail_next_copy(args.fail_copy)
        print(f"sending {len(jobs)} job(s) via {args.via}")
        for job in jobs:
            if args.via == "event":
                rt.put_event(COPY_REQUESTED, job if isinstance(job, (dict, str)) else json.dumps(job))
            else:
                rt.send_job(job if isinstance(job, (dict, str)) else json.dumps(job))
        rt.run_until_idle(timeout=args.timeout)
        events = rt.completion_events()
        print("\ncompletion events:")
        for event in events:
            print(json.dumps(event, indent=2))
        print("\nsummary:")
        table(summary_rows(rt))
        outcomes = [e["detail-type"] for e in events if e["detail-type"] in OUTCOME_STATUS]
    if len(outcomes) != len(jobs):
        print(f"\n{len(jobs)} job(s) sent, {len(outcomes)} terminal event(s) (duplicate job ids give one)")
    return 0 if outcomes and all(o == SUCCEEDED for o in outcomes) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from offline import demo

    return demo.main(["--time-scale", str(args.time_scale)] + (["--quiet"] if args.quiet else []))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m offline", description="Run copy jobs against the embedded local runtime."
    )
    sub = root.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--time-scale", type=float, default=0.01, help="real seconds per virtual second (0.01)")
        p.add_argument("--copy-duration", type=float, default=60.0, help="emulated copy time in virtual seconds")
        p.add_argument("--quiet", action="store_true", help="no live progress lines")
        p.add_argument(
            "--config", action="append", metavar="KEY=VALUE", help="hicopy config override, e.g. copyBurst=2"
        )
        p.add_argument("--seed-series", type=int, default=2, help="series of the seeded source image set (2)")
        p.add_argument("--seed-instances", type=int, default=3, help="instances per series (3)")
        p.add_argument("--seed-frames", type=int, default=1, help="frames per instance (1)")

    run = sub.add_parser("run-job", help="run the jobs of a JSON file through the local pipeline")
    run.add_argument("job_file", help="a JSON job, or a JSON array of jobs (${NAME} placeholders with --seed)")
    run.add_argument("--seed", action="store_true", help="seed demo image sets and fill in ${NAME} placeholders")
    run.add_argument("--via", choices=("sqs", "event"), default="sqs", help="job queue (sqs) or Copy Requested event")
    run.add_argument("--fail-copy", metavar="MESSAGE", help="the next copy ends COPY_FAILED with this message")
    run.add_argument(
        "--fault", action="append", metavar="OP:CODE[:TIMES]", help="e.g. CopyImageSet:ThrottlingException:2"
    )
    run.add_argument("--timeout", type=float, default=120.0, help="give up after this many real seconds")
    common(run)
    run.set_defaults(func=cmd_run_job)

    seed = sub.add_parser("seed", help="print the placeholders --seed defines and their values")
    common(seed)
    seed.set_defaults(func=cmd_seed)

    demo = sub.add_parser("demo", help="the scripted tour (python -m offline.demo)")
    common(demo)
    demo.set_defaults(func=cmd_demo)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return result
