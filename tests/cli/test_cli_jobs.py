"""``hicopy submit`` and ``hicopy plan`` against the local runtime: jobs really sent, checked and planned."""

from __future__ import annotations

import json
from pathlib import Path

from hicopy.contract import SUCCEEDED
from offline.runtime import LocalRuntime
from tests.cli.conftest import CLI, events_of, statuses
from tests.e2e.helpers import sop_uids


def test_submit_sends_a_job_without_id_and_waits_for_its_copy(rt: LocalRuntime, cli: CLI, tmp_path: Path) -> None:
    src = rt.seed_image_set(series=2, instances_per_series=2)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}) + "\n")

    run = cli("submit", str(jobs), "--wait", "--interval", "0.05", "--timeout", "60")

    assert run.code == 0, run.err
    job_id = run.lines[0]
    assert job_id.startswith("cli-")
    assert "1 of 1 job(s) succeeded" in run.err
    event = events_of(rt, job_id)[job_id]  # the ID the CLI gave it, followed to the end
    assert event["detail-type"] == SUCCEEDED
    copied = rt.emulator.metadata(rt.datastore_id, event["detail"]["destination"]["imageSetId"])
    assert sop_uids(copied) == sop_uids(src.metadata)


def test_nothing_is_sent_when_one_job_is_invalid(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    good = {"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    typo = {"datastoreId": rt.datastore_id, "source": {"imageSetID": src.image_set_id}}
    array = json.dumps([{**good, "jobId": "ok-1"}, typo, {**good, "jobId": "ok-2"}])

    run = cli("submit", "-", stdin=array)

    assert run.code == 1
    assert "stdin [1]" in run.err and "source.imageSetID: unknown field" in run.err
    assert "nothing sent" in run.err
    assert rt.queue_messages(rt.deployment.job_queue_url) == []
    rt.run_until_idle(timeout=30)
    assert statuses(rt, "ok-1", "ok-2") == {}

    run = cli("submit", "--skip-invalid", "-", stdin=array)
    assert run.code == 0, run.err
    assert run.lines == ["ok-1", "ok-2"]
    rt.run_until_idle(timeout=30)
    assert statuses(rt, "ok-1", "ok-2") == {"ok-1": "SUCCEEDED", "ok-2": "SUCCEEDED"}


def test_json_lines_errors_name_the_line(rt: LocalRuntime, cli: CLI) -> None:
    good = json.dumps({"jobId": "a", "datastoreId": rt.datastore_id, "source": {"imageSetId": "a" * 32}})
    text = f"{good}\n\n{{not json\n" + json.dumps({"jobId": "a", "datastoreId": "x", "source": {}}) + "\n"

    run = cli("--json", "submit", "-", stdin=text)

    assert run.code == 1
    problems = {p["from"]: p["problem"] for p in json.loads(run.out)["invalid"]}
    assert set(problems) == {"stdin line 3", "stdin line 4"}
    assert "not valid JSON" in problems["stdin line 3"]
    assert "datastoreId" in problems["stdin line 4"] and "source.imageSetId" in problems["stdin line 4"]


def test_duplicate_job_ids_in_one_submission_are_refused(rt: LocalRuntime, cli: CLI) -> None:
    job = {"jobId": "twice", "datastoreId": rt.datastore_id, "source": {"imageSetId": "a" * 32}}
    run = cli("submit", json.dumps([job, job]))
    assert run.code == 1
    assert "argument [1]" in run.err and "also the ID of argument [0]" in run.err


def test_submit_reads_an_s3_manifest(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    s3 = rt.client("s3")
    s3.create_bucket(Bucket="manifests")
    jobs = [
        {"jobId": f"s3-{n}", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}} for n in (1, 2)
    ]
    s3.put_object(Bucket="manifests", Key="jobs.jsonl", Body="\n".join(json.dumps(x) for x in jobs).encode())

    run = cli("submit", "s3://manifests/jobs.jsonl")

    assert run.code == 0, run.err
    assert run.lines == ["s3-1", "s3-2"]
    rt.run_until_idle(timeout=30)
    assert statuses(rt, "s3-1", "s3-2") == {"s3-1": "SUCCEEDED", "s3-2": "SUCCEEDED"}
    missing = cli("submit", "s3://manifests/nope.jsonl")
    assert missing.code == 2 and "s3://manifests/nope.jsonl" in missing.err


def test_plan_shows_versions_chunks_and_copiable_attributes(rt: LocalRuntime, cli: CLI) -> None:
    # 2 series x 3 instances x 300 frames = 1,800 frames: more than one copy's 1,000, so the copy is chunked.
    src = rt.seed_image_set(series=2, instances_per_series=3, frames_per_instance=300)
    job = {"jobId": "big", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    copies = len(rt.emulator.calls_to("CopyImageSet"))

    run = cli("--json", "plan", json.dumps(job))

    assert run.code == 0, run.err
    [plan] = json.loads(run.out)["jobs"]
    assert plan["outcome"] == "copy"
    assert plan["source"] == {"imageSetId": src.image_set_id, "versionId": src.version_id}
    assert plan["destination"] is None and plan["totalFrames"] == 1800 and plan["frameLimit"] == 1000
    chunks = plan["chunks"]
    assert len(chunks) == 2 and all(c["frames"] <= 1000 for c in chunks)
    assert sum(c["instances"] for c in chunks) == 6 and chunks[0]["series"] == 2  # the first opens every series
    copied: dict[str, set[str]] = {}
    for c in chunks:
        for series_uid, series in json.loads(c["copiableAttributes"])["Study"]["Series"].items():
            copied.setdefault(series_uid, set()).update(series["Instances"])
    assert copied == {uid: set(sops) for uid, sops in src.instances.items()}
    # Read-only: no copy was started, nothing was queued.
    assert len(rt.emulator.calls_to("CopyImageSet")) == copies and rt.queue_messages(rt.deployment.job_queue_url) == []

    text = cli("plan", json.dumps(job))
    assert text.code == 0
    assert f"source       {src.image_set_id} version {src.version_id}" in text.out
    assert "chunk 2: " in text.out and "in 2 chunk(s) of at most 1000 frames" in text.out


def test_plan_says_why_jobs_would_be_refused(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    base = {"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    jobs = [
        {**base, "jobId": "stale", "source": {"imageSetId": src.image_set_id, "versionId": "7"}},
        {**base, "jobId": "missing", "source": {"imageSetId": "f" * 32}},
        {**base, "jobId": "elsewhere", "datastoreId": "e" * 32},
        {**base, "jobId": "bad-selection", "instances": ["1.2.3"]},
        {**base, "jobId": "fine"},
    ]

    run = cli("--json", "plan", json.dumps(jobs))

    assert run.code == 1
    plans = {p["jobId"]: p for p in json.loads(run.out)["jobs"]}
    assert {k: p["outcome"] for k, p in plans.items()} == {
        "stale": "refused",
        "missing": "refused",
        "elsewhere": "refused",
        "bad-selection": "refused",
        "fine": "copy",
    }
    assert plans["stale"]["reason"]["code"] == "StaleVersion"
    assert "not the latest version (1)" in plans["stale"]["reason"]["message"]
    assert plans["missing"]["reason"]["code"] in ("NotFound", "ImageSetNotFound")
    assert "not one this orchestrator is configured for" in plans["elsewhere"]["reason"]["message"]
    assert "instances not in the source image set: 1.2.3" in plans["bad-selection"]["reason"]["message"]
    assert "stale (argument [0]): REFUSED" in cli("plan", json.dumps(jobs)).out


def test_submit_dry_run_plans_and_sends_nothing(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    job = {"jobId": "dry", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    run = cli("submit", "--dry-run", json.dumps(job))
    assert run.code == 0, run.err
    assert "dry (argument): would copy" in run.out
    rt.run_until_idle(timeout=30)
    assert statuses(rt, "dry") == {}
