"""``make demo``: the whole orchestrator running offline, as a scripted tour with live progress.

Runs on the embedded local runtime (``offline.runtime.LocalRuntime``): the real CDK template deployed into moto, the
real state machine executed by moto's Step Functions engine, the real Lambda handlers in-process, and the
HealthImaging emulator. Time runs 100x faster (``--time-scale``), so minutes of polling back-off take seconds.

Chapters: a whole copy (SQS job), a subset copy (``Copy Requested`` event), a merge into an existing image set, a
copy the service fails (``COPY_FAILED`` with its message), an invalid job (rejected, kept in the DLQ), and a
post-import run (emulated import -> ``Import Job Completed`` -> planner -> copy jobs). Then every completion event
and a summary table. The exit code is 1 if any chapter's outcome differs from the expected one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hicopy.contract import COPY_REQUESTED, IMPORT_PLANNED, OUTCOME_STATUS
from offline.runtime import LocalRuntime
from offline.runtime.console import ProgressPrinter, compact, summary_rows, table

FAIL_MESSAGE = "INVALID_REQUEST:  Series of SourceImageSet and DestinationImageSet don't match."


@dataclass
class Tour:
    rt: LocalRuntime
    labels: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def label(self, job_id: str) -> str:
        return self.labels.get(job_id, job_id[:22])

    def outcome(self, job_id: str) -> tuple[str | None, dict[str, Any]]:
        for event in self.rt.completion_events():
            detail = event["detail"]
            if detail.get("jobId") == job_id and event["detail-type"] in OUTCOME_STATUS:
                return OUTCOME_STATUS[event["detail-type"]], detail
        return None, {}

    def check(self, ok: bool, what: str) -> None:
        mark = "ok " if ok else "FAIL"
        print(f"    {mark} {what}")
        if not ok:
            self.problems.append(what)


def _sops(metadata: dict[str, Any]) -> set[str]:
    return {sop for series in metadata["Study"]["Series"].values() for sop in series["Instances"]}


def whole_copy(tour: Tour) -> None:
    rt = tour.rt
    src = rt.seed_image_set(series=2, instances_per_series=3)
    tour.labels["demo-whole-copy"] = "whole copy"
    print(f"    source image set {src.image_set_id}: 2 series x 3 instances; SQS job without destination")
    rt.send_job(
        {"jobId": "demo-whole-copy", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    )
    rt.run_until_idle(timeout=60)
    outcome, detail = tour.outcome("demo-whole-copy")
    tour.check(outcome == "SUCCEEDED", f"whole copy: {outcome} (expected SUCCEEDED)")
    if outcome == "SUCCEEDED":
        copied = rt.emulator.metadata(rt.datastore_id, detail["destination"]["imageSetId"])
        tour.check(_sops(copied) == _sops(src.metadata), "new image set holds all 6 instances")


def subset_copy(tour: Tour) -> None:
    rt = tour.rt
    src = rt.seed_image_set(series=2, instances_per_series=3)
    wanted = [src.instances[src.series_uids[0]][0], src.instances[src.series_uids[1]][1]]
    tour.labels["demo-subset-copy"] = "subset copy"
    print("    'Copy Requested' event on the custom bus, selecting 2 of the 6 instances")
    rt.put_event(
        COPY_REQUESTED,
        {
            "jobId": "demo-subset-copy",
            "datastoreId": rt.datastore_id,
            "source": {"imageSetId": src.image_set_id},
            "instances": wanted,
            "correlationId": "pacs-order-42",
        },
    )
    rt.run_until_idle(timeout=60)
    outcome, detail = tour.outcome("demo-subset-copy")
    tour.check(outcome == "SUCCEEDED", f"subset copy: {outcome} (expected SUCCEEDED)")
    if outcome == "SUCCEEDED":
        copied = rt.emulator.metadata(rt.datastore_id, detail["destination"]["imageSetId"])
        tour.check(_sops(copied) == set(wanted), "new image set holds exactly the 2 selected instances")
        tour.check(detail.get("trigger", {}).get("type") == "event", "trigger recorded as 'event'")


def merge_copy(tour: Tour) -> None:
    rt = tour.rt
    dest = rt.seed_image_set(series=1, instances_per_series=2)
    src = rt.seed_image_set(series=1, instances_per_series=2, study_uid=dest.study_uid, is_primary=False)
    tour.labels["demo-merge"] = "merge into existing"
    print(f"    destination {dest.image_set_id} (version 1) gets the source's series merged in (force)")
    rt.send_job(
        {
            "jobId": "demo-merge",
            "datastoreId": rt.datastore_id,
            "source": {"imageSetId": src.image_set_id},
            "destination": {"imageSetId": dest.image_set_id},
            "force": True,
        }
    )
    rt.run_until_idle(timeout=60)
    outcome, _detail = tour.outcome("demo-merge")
    tour.check(outcome == "SUCCEEDED", f"merge: {outcome} (expected SUCCEEDED)")
    if outcome == "SUCCEEDED":
        versions = [v["versionId"] for v in rt.emulator.versions(rt.datastore_id, dest.image_set_id)]
        tour.check(versions == ["1", "2"], f"destination versions {versions} (expected ['1', '2'])")


def failing_copy(tour: Tour) -> None:
    rt = tour.rt
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.emulator.fail_next_copy(FAIL_MESSAGE)
    tour.labels["demo-service-fails"] = "service fails copy"
    print("    the emulator ends the next copy COPY_FAILED with the service's message")
    rt.send_job(
        {"jobId": "demo-service-fails", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    )
    rt.run_until_idle(timeout=60)
    outcome, detail = tour.outcome("demo-service-fails")
    tour.check(outcome == "FAILED", f"failing copy: {outcome} (expected FAILED)")
    message = (detail.get("reason") or {}).get("message", "")
    tour.check(FAIL_MESSAGE in message, "failure event carries the service's COPY_FAILED message")


def rejected_job(tour: Tour) -> None:
    rt = tour.rt
    tour.labels["demo-invalid"] = "invalid job"
    print("    a job with a bad image set id and an unknown field")
    body = {
        "jobId": "demo-invalid",
        "datastoreId": rt.datastore_id,
        "source": {"imageSetId": "NOT-AN-ID"},
        "colour": "x",
    }
    rt.send_job(body)
    rt.run_until_idle(timeout=60)
    outcome, _detail = tour.outcome("demo-invalid")
    tour.check(outcome == "REJECTED", f"invalid job: {outcome} (expected REJECTED)")
    kept = [m for m in rt.dlq_messages() if m["body"] == body]
    tour.check(len(kept) == 1, "original message kept in the job dead-letter queue")


def post_import(tour: Tour) -> None:
    from offline.healthimaging import SeedSpec

    rt = tour.rt
    primary = rt.seed_image_set(series=1, instances_per_series=2)
    print("    an import of 3 files: one new series (-> primary) and one that conflicts with an existing primary")
    print(f"    (-> a non-primary image set); the '{rt.config['postImportPolicy']}' policy folds it into the primary")
    import_job = rt.simulate_import(
        image_sets=[
            SeedSpec(series=1, instances_per_series=2),
            SeedSpec(
                series=1,
                instances_per_series=1,
                study_uid=primary.study_uid,
                series_uids=(primary.series_uids[0],),
                patient_id="PAT-RESCANNED",
            ),
        ]
    )
    tour.labels[import_job] = "import"
    rt.run_until_idle(timeout=60)
    planned = [e for e in rt.completion_events(IMPORT_PLANNED) if e["detail"].get("importJobId") == import_job]
    jobs = planned[0]["detail"]["jobsPlanned"] if planned else []
    for n, job_id in enumerate(jobs, 1):
        tour.labels[job_id] = f"post-import #{n}"
    tour.check(len(jobs) == 1, f"planner planned {len(jobs)} consolidation job(s) (expected 1)")
    for job_id in jobs:
        outcome, detail = tour.outcome(job_id)
        tour.check(outcome == "SUCCEEDED", f"{tour.label(job_id)}: {outcome} (expected SUCCEEDED)")
        tour.check(
            detail.get("destination", {}).get("imageSetId") == primary.image_set_id,
            "merged into the existing primary image set",
        )


CHAPTERS: Sequence[tuple[str, str, Callable[[Tour], None]]] = (
    ("1. Whole copy", "an SQS job copies an image set to a new image set", whole_copy),
    ("2. Subset copy", "a 'Copy Requested' event copies selected instances", subset_copy),
    ("3. Merge", "a copy into an existing image set makes its version 2", merge_copy),
    ("4. Service failure", "HealthImaging ends a copy COPY_FAILED", failing_copy),
    ("5. Invalid job", "a malformed job is rejected, never retried", rejected_job),
    ("6. Post-import", "an import completes; the planner consolidates what it produced", post_import),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m offline.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=0.01, help="real seconds per virtual second (0.01)")
    parser.add_argument("--copy-duration", type=float, default=60.0, help="emulated copy time, virtual seconds")
    parser.add_argument("--quiet", action="store_true", help="no live progress lines")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    print("HealthImaging copy orchestrator: offline demo (no AWS account, no Docker)")
    print(
        "  setting up: synthesizing the CDK app (cached), deploying it into moto, starting the HealthImaging emulator"
    )
    labels: dict[str, str] = {}
    printer = ProgressPrinter(label=lambda job_id: labels.get(job_id, job_id[:22]))
    printer.enabled = not args.quiet
    rt = LocalRuntime(time_scale=args.time_scale, copy_duration=args.copy_duration, progress=printer)
    with rt:
        tour = Tour(rt, labels)
        print(
            f"  ready in {rt.timings['start']:.1f}s: stack {rt.deployment.assembly.stack_name}, "
            f"data store {rt.datastore_id}, time x{1 / args.time_scale:.0f}"
        )
        for title, explain, run in CHAPTERS:
            print(f"\n{title}: {explain}")
            try:
                run(tour)
            except Exception as exc:  # keep touring; the chapter counts as failed
                tour.check(False, f"{title} raised {type(exc).__name__}: {exc}")
        print("\nCompletion events published on the custom bus:")
        for event in rt.completion_events():
            print(f"  {compact(event)}")
        print(
            "\nSummary (duration: real seconds of the execution here; virtual: the same on the pipeline's clock, "
            f"x{1 / args.time_scale:.0f}, local overheads included):"
        )
        table(summary_rows(rt, tour.label))
        calls = rt.emulator.calls
        copies = [c for c in calls if c.operation == "CopyImageSet"]
        print(
            f"\n  {len(rt.executions())} executions, {len(rt.invocations)} Lambda invocations, "
            f"{len(calls)} HealthImaging calls ({len(copies)} CopyImageSet), {time.monotonic() - t0:.1f}s in total"
        )
    if tour.problems:
        print(f"\nDEMO FAILED: {len(tour.problems)} check(s) did not hold:")
        for problem in tour.problems:
            print(f"  - {problem}")
        return 1
    print("\nAll chapters ended as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
