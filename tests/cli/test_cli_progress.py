"""``hicopy status`` while a copy runs: the current step, chunk k of n and the status checks so far."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from offline.runtime import LocalRuntime
from tests.cli.conftest import CLI, FAST, events_of


@pytest.fixture(scope="module")
def rt() -> Iterator[LocalRuntime]:
    # Each copy lasts 600 virtual seconds, about 6 s of real time: long enough to look at it while it copies, even on
    # a loaded machine.
    with LocalRuntime(time_scale=FAST, copy_duration=600.0) as runtime:
        yield runtime


def test_status_follows_a_running_copy_then_reports_its_outcome(rt: LocalRuntime, cli: CLI) -> None:
    src = rt.seed_image_set()
    job = {"jobId": "slow", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    assert cli("submit", json.dumps(job)).code == 0

    deadline = time.monotonic() + 30
    while True:
        rt.pump()
        running = json.loads(cli("--json", "status", "slow").out)
        # the status check, or the wait between two checks (cut short by HealthImaging's copy event)
        if running["step"] in ("AwaitCopy", "WaitForCopyEvent", "PollWait") and running["statusChecks"] >= 2:
            break
        assert time.monotonic() < deadline, running
        time.sleep(0.02)
    assert running["status"] == "RUNNING" and running["chunk"] == 1 and running["chunks"] == 1
    text = cli("status", "slow")
    assert text.code == 0
    assert "step           " in text.out and "copying chunk 1" in text.out and "status checks" in text.out

    rt.run_until_idle(timeout=60)
    done = json.loads(cli("--json", "status", "slow").out)
    event = events_of(rt, "slow")["slow"]
    assert done["status"] == "SUCCEEDED" and done["chunksCompleted"] == 1 and done["step"] is None
    assert done["statusChecks"] == event["detail"]["statusChecks"] > running["statusChecks"]
    assert done["destination"] == event["detail"]["destination"]
