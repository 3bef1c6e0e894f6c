"""``hicopy sweep``: the post-import policy planned (and sent) for non-primary image sets already stored."""

from __future__ import annotations

import json

from hicopy.contract import SUCCEEDED
from offline.runtime import LocalRuntime
from tests.cli.conftest import CLI, events_of
from tests.e2e.helpers import sop_uids


def test_sweep_plans_then_submits_the_consolidation_of_stored_non_primary_image_sets(
    rt: LocalRuntime, cli: CLI
) -> None:
    primary = rt.seed_image_set(series=1, instances_per_series=2)
    stray = rt.seed_image_set(
        series_uids=primary.series_uids, instances_per_series=1, study_uid=primary.study_uid, is_primary=False
    )
    lonely = rt.seed_image_set(series=1, instances_per_series=1, is_primary=False)  # its series has no primary

    plan = json.loads(cli("--json", "sweep", rt.datastore_id, "--sweep-id", "sweep-t1").out)

    assert sorted(plan["nonPrimaryImageSets"]) == sorted([stray.image_set_id, lonely.image_set_id])
    jobs = {j["job"]["source"]["imageSetId"]: j for j in plan["jobs"]}
    assert jobs[stray.image_set_id]["job"]["destination"] == {"imageSetId": primary.image_set_id}
    assert jobs[stray.image_set_id]["job"]["jobId"] == f"imp-sweep-t1-{stray.image_set_id}"
    assert jobs[stray.image_set_id]["trigger"]["action"] == "merge"
    assert jobs[lonely.image_set_id]["job"]["promoteToPrimary"] is True
    rt.run_until_idle(timeout=30)
    assert rt.executions() == []  # a dry run by default

    run = cli("sweep", rt.datastore_id, "--sweep-id", "sweep-t1", "--submit", "--wait", "--interval", "0.05")

    assert run.code == 0, run.err
    assert "merge" in run.out and "promote" in run.out
    merged_id = f"imp-sweep-t1-{stray.image_set_id}"
    merged = events_of(rt, merged_id)[merged_id]
    assert merged["detail-type"] == SUCCEEDED and merged["detail"]["trigger"]["type"] == "import"
    into = rt.emulator.metadata(rt.datastore_id, primary.image_set_id)
    assert sop_uids(stray.metadata) <= sop_uids(into)
    # Sweeping again plans nothing: both sources now show they were copied.
    again = json.loads(cli("--json", "sweep", rt.datastore_id, "--sweep-id", "sweep-t2").out)
    assert again["jobs"] == [] and sorted(again["skippedCopies"]) == sorted([stray.image_set_id, lonely.image_set_id])
    forced = json.loads(cli("--json", "sweep", rt.datastore_id, "--sweep-id", "sweep-t2", "--include-copies").out)
    assert stray.image_set_id in forced["nonPrimaryImageSets"]


def test_sweep_refuses_a_data_store_the_stack_does_not_serve(rt: LocalRuntime, cli: CLI) -> None:
    run = cli("sweep", "e" * 32)
    assert run.code == 1 and "not configured for data store" in run.err
