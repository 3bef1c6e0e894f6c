"""The orchestrator and the premises against real AWS HealthImaging (``make test-aws``; skipped unless opted in).

First every premise of ``tests.support.premises`` is asked of the real service and its answer recorded in
``tests/data/healthimaging/premises.json`` (commit the file: ``tests/emulator/test_premises.py`` then holds the
emulator to it). Then the deployed stack runs whole, subset, merge, failing, forced and promote copies and the
post-import policy, and each job must end with exactly one terminal event true to what the service did.
"""

from __future__ import annotations

from typing import Any

import pytest

from hicopy.contract import FAILED, SUCCEEDED
from tests.support import premises


@pytest.mark.parametrize("premise", premises.PREMISES, ids=lambda p: p.id)
def test_record_the_service_answer_to_each_premise(account: Any, premise: premises.Premise) -> None:
    answer = premise.probe(account)
    premises.record(premise.id, answer, region=account.region)


def _job(account: Any, job_id: str, source: Any, **job: Any) -> dict[str, Any]:
    body = {
        "jobId": f"{job_id}-{account.suffix}",
        "datastoreId": account.datastore_id,
        "source": {"imageSetId": source.image_set_id},
        **job,
    }
    account.send_job(body)
    event: dict[str, Any] = account.terminal_event(body["jobId"])
    return event


def _sop_uids(account: Any, image_set_id: str) -> set[str]:
    from hicopy.adapters.healthimaging import HealthImaging

    document = HealthImaging(account.mi).get_metadata(account.datastore_id, image_set_id)
    return {uid for series in document["Study"]["Series"].values() for uid in series["Instances"]}


def test_whole_copy(account: Any) -> None:
    source = account.make(series=2, instances=2)
    event = _job(account, "whole", source)
    assert event["detail-type"] == SUCCEEDED, event
    copied = _sop_uids(account, event["detail"]["destination"]["imageSetId"])
    assert copied == {uid for uids in source.instances.values() for uid in uids}


def test_subset_copy(account: Any) -> None:
    source = account.make(instances=3)
    wanted = source.instances[source.series_uids[0]][:2]
    event = _job(account, "subset", source, instances=wanted)
    assert event["detail-type"] == SUCCEEDED, event
    assert _sop_uids(account, event["detail"]["destination"]["imageSetId"]) == set(wanted)


def test_merge_into_an_image_set_holding_the_series(account: Any) -> None:
    source = account.make(instances=3)
    series, uids = source.series_uids[0], source.instances[source.series_uids[0]]
    first = _job(account, "merge-base", source, instances=uids[:1])
    destination = first["detail"]["destination"]
    merged = _job(account, "merge", source, instances=uids[1:2], destination={"imageSetId": destination["imageSetId"]})
    assert merged["detail-type"] == SUCCEEDED, merged
    assert int(merged["detail"]["destination"]["versionId"]) > int(destination["versionId"])
    assert _sop_uids(account, destination["imageSetId"]) == set(uids[:2]), series


def test_failing_copy_reports_the_service_message(account: Any) -> None:
    source = account.make(instances=2)
    destination = account.make(study_of=source)  # lacks the Series: the service refuses the subset copy
    event = _job(
        account,
        "failing",
        source,
        instances=source.instances[source.series_uids[0]][:1],
        destination={"imageSetId": destination.image_set_id},
    )
    assert event["detail-type"] == FAILED, event
    reason = event["detail"]["reason"]
    if reason["code"] == "CopyFailed":  # the service's own message, verbatim, and the version it produced
        got = account.settle(destination.image_set_id, event["detail"]["destination"]["versionId"])
        assert reason["message"] == got.get("message")


def test_forced_copy_into_a_conflicting_image_set(account: Any) -> None:
    source = account.make(instances=2)
    conflicting = account.make_non_primary(source)
    event = _job(
        account,
        "forced",
        source,
        instances=source.instances[source.series_uids[0]][:1],
        destination={"imageSetId": conflicting.image_set_id},
        force=True,
    )
    assert event["detail-type"] == SUCCEEDED, event
    assert event["detail"]["force"] is True


def test_promote_of_a_conflicting_non_primary_set_ends_with_one_true_event(account: Any) -> None:
    source = account.make(instances=2)
    non_primary = account.make_non_primary(source)
    event = _job(account, "promote", non_primary, promoteToPrimary=True)
    # The developer guide: resolve the conflict first. Either way, one event says what happened.
    assert event["detail-type"] in (SUCCEEDED, FAILED), event
    if event["detail-type"] == SUCCEEDED:
        made = account.settle(event["detail"]["destination"]["imageSetId"])
        assert made.get("isPrimary") is True


def test_post_import_policy_plans_jobs_and_each_ends_with_one_event(account: Any) -> None:
    source = account.make(instances=2)
    account.make_non_primary(source)  # an import that produced a non-primary image set: the planner plans for it

    def planned_events() -> list[dict[str, Any]]:
        account.orchestrator_events += account.drain("orchestrator")
        return [e for e in account.orchestrator_events if e["detail-type"] == "Import Job Planned"]

    planned = premises.wait_until(planned_events, timeout=15 * 60, interval=10)
    job_ids = [job_id for e in planned for job_id in e["detail"]["jobsPlanned"]]
    assert job_ids, planned
    for job_id in job_ids:
        assert account.terminal_event(job_id)["detail"]["trigger"]["type"] == "import"
