"""``hicopy status``, ``watch``, ``list`` and ``rerun``: jobs followed through their real executions."""

from __future__ import annotations

import json
import time

from hicopy.contract import FAILED, SUCCEEDED
from offline.runtime import LocalRuntime
from tests.cli.conftest import CLI, Terminal, events_of, statuses


def _job(rt: LocalRuntime, job_id: str, image_set_id: str, **extra: object) -> str:
    return json.dumps(
        {"jobId": job_id, "datastoreId": rt.datastore_id, "source": {"imageSetId": image_set_id}, **extra}
    )


def test_status_of_a_failed_job_gives_the_reason_of_its_failure_event(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    rt.emulator.fail_next_copy("INVALID_REQUEST: Series of SourceImageSet and DestinationImageSet don't match.")
    cli("submit", _job(rt, "doomed", src.image_set_id))
    rt.run_until_idle(timeout=30)

    run = cli("--json", "status", "doomed")

    assert run.code == 1
    status = json.loads(run.out)
    event = events_of(rt, "doomed")["doomed"]
    assert event["detail-type"] == FAILED
    assert status["status"] == "FAILED"
    assert status["reason"] == event["detail"]["reason"]  # the same code and service message
    assert status["statusChecks"] == event["detail"]["statusChecks"]
    assert status["chunk"] == 1 and status["chunksCompleted"] == 0
    assert "reason         CopyFailed: INVALID_REQUEST: Series" in cli("status", "doomed").out

    missing = cli("status", "never-sent")
    assert missing.code == 1 and "NOT_FOUND" in missing.out


def test_watch_exits_1_unless_every_job_succeeded(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    jobs = json.dumps([json.loads(_job(rt, "w-ok", src.image_set_id)), json.loads(_job(rt, "w-gone", "f" * 32))])
    assert cli("submit", jobs).code == 0

    run = cli("watch", "w-ok", "w-gone", "--interval", "0.05", "--timeout", "60")

    assert run.code == 1
    last = {line.split()[0]: line for line in run.lines}
    assert "SUCCEEDED" in last["w-ok"] and "FAILED" in last["w-gone"]
    assert "NotFound" in last["w-gone"] or "ImageSetNotFound" in last["w-gone"]
    assert "1 of 2 job(s) succeeded" in run.err
    # Only the succeeded one: exit code 0; on a terminal, the lines are redrawn in place.
    screen = Terminal()
    assert cli("watch", "w-ok", stdout=screen).code == 0
    assert "\x1b[2K" in screen.getvalue() and "1 job(s): 1 succeeded" in screen.getvalue()
    stream = cli("--json", "watch", "w-ok", "w-gone")
    assert [json.loads(line)["status"] for line in stream.lines] == ["SUCCEEDED", "FAILED"]


def test_watch_gives_up_at_its_timeout(rt: LocalRuntime, cli: CLI) -> None:
    start = time.monotonic()
    run = cli("watch", "not-there", "--interval", "0.01", "--timeout", "0.2")
    assert time.monotonic() - start < 2
    assert run.code == 1 and "not finished: not-there" in run.err and "NOT_FOUND" in run.out


def test_list_shows_recent_jobs_by_status(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    cli("submit", _job(rt, "l-ok", src.image_set_id))
    cli("submit", _job(rt, "l-gone", "f" * 32))
    rt.run_until_idle(timeout=30)

    listed = json.loads(cli("--json", "list").out)
    listed_status = {j["jobId"]: j["status"] for j in listed["jobs"]}
    assert {k: listed_status[k] for k in ("l-ok", "l-gone")} == {"l-ok": "SUCCEEDED", "l-gone": "FAILED"}
    assert listed["counts"] == {s: list(listed_status.values()).count(s) for s in set(listed_status.values())}
    started = [j["startedAt"] for j in listed["jobs"]]
    assert started == sorted(started, reverse=True)  # newest first
    failed = cli("list", "--status", "failed", "--since", "1h")
    assert failed.code == 0 and "l-gone" in failed.out and "l-ok" not in failed.out
    assert "job(s): " in failed.lines[0] and "failed" in failed.lines[0] and "succeeded" not in failed.lines[0]
    assert len(json.loads(cli("--json", "list", "--since", "2000-01-01T00:00:00Z", "--limit", "1").out)["jobs"]) == 1
    assert json.loads(cli("--json", "list", "--since", "2999-01-01").out)["jobs"] == []


def test_rerun_sends_a_failed_job_again_under_a_linked_new_id(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=2)
    rt.emulator.fail_next_copy("INVALID_REQUEST: transient trouble")
    cli("submit", _job(rt, "flaky", src.image_set_id))
    rt.run_until_idle(timeout=30)
    assert json.loads(cli("--json", "status", "flaky").out)["status"] == "FAILED"

    run = cli("rerun", "flaky", "--wait", "--interval", "0.05", "--timeout", "60")

    assert run.code == 0, run.err
    assert run.lines[0] == "flaky-r1"
    by_job = events_of(rt, "flaky", "flaky-r1")
    assert by_job["flaky"]["detail-type"] == FAILED and by_job["flaky-r1"]["detail-type"] == SUCCEEDED
    assert by_job["flaky-r1"]["detail"]["correlationId"] == "flaky"  # linked to the job it reruns
    assert statuses(rt, "flaky", "flaky-r1", "flaky-r2") == {"flaky": "FAILED", "flaky-r1": "SUCCEEDED"}
    # A succeeded job is never rerun; the next rerun of the failed one gets the next free suffix.
    refused = cli("rerun", "flaky-r1")
    assert refused.code == 1 and "SUCCEEDED" in refused.err
    again = json.loads(cli("--json", "rerun", "flaky", "--dry-run").out)
    assert again["jobId"] == "flaky-r2" and again["job"]["correlationId"] == "flaky"
    rt.run_until_idle(timeout=30)
    assert "flaky-r2" not in statuses(rt, "flaky-r2")  # a dry run sends nothing
