"""Post-import: an emulated DICOM import -> ``Import Job Completed`` on the default bus -> the import planner
(EventBridge Lambda target, asynchronous) -> copy jobs on the job queue -> executions -> completion events."""

from __future__ import annotations

from collections.abc import Callable

from hicopy.contract import IMPORT_PLANNED, SUCCEEDED
from offline.healthimaging import SeedSpec
from offline.runtime import LocalRuntime
from tests.e2e.helpers import sop_uids, terminal_events


def test_import_of_a_non_primary_image_set_is_consolidated(rt: LocalRuntime) -> None:
    primary = rt.seed_image_set(series=1, instances_per_series=2)
    conflicting = SeedSpec(
        series=1,
        instances_per_series=1,
        study_uid=primary.study_uid,
        series_uids=(primary.series_uids[0],),
        patient_id="ANOTHER-PATIENT",  # Patient elements disagree -> the import creates a NON-primary image set
    )
    import_job_id = rt.simulate_import(image_sets=[conflicting])
    rt.run_until_idle(timeout=60)

    [planner_call] = rt.invocations_of("ImportPlanner")
    assert planner_call.ok, planner_call.result
    assert planner_call.event["detail-type"] == "Import Job Completed"
    assert planner_call.event["source"] == "aws.medical-imaging"
    assert planner_call.event["detail"]["jobId"] == import_job_id

    [planned] = rt.completion_events(IMPORT_PLANNED)
    assert planned["detail"]["importJobId"] == import_job_id
    assert planned["detail"]["nonPrimaryImageSets"] == 1
    jobs = planned["detail"]["jobsPlanned"]
    assert len(jobs) == 1

    [event] = terminal_events(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    detail = event["detail"]
    assert detail["jobId"] == jobs[0]
    assert detail["trigger"]["type"] == "import"
    assert detail["destination"]["imageSetId"] == primary.image_set_id
    merged = rt.emulator.metadata(rt.datastore_id, primary.image_set_id)
    assert sop_uids(merged) > sop_uids(primary.metadata)


def test_import_with_only_new_series_plans_nothing(rt: LocalRuntime) -> None:
    rt.simulate_import(image_sets=[SeedSpec(series=2, instances_per_series=1)])
    rt.run_until_idle(timeout=60)

    assert len(rt.invocations_of("ImportPlanner")) == 1
    assert terminal_events(rt) == []
    assert rt.executions() == []


def test_a_failing_planner_is_retried_asynchronously_then_dead_lettered(
    make_runtime: Callable[..., LocalRuntime],
) -> None:
    # An invalid environment makes every planner invocation fail (ConfigurationError at cold start). EventBridge
    # invokes the planner asynchronously: Lambda retries twice (the function's event-invoke config), 1 and 2
    # minutes apart, then sends the event to the function's dead-letter queue.
    rt = make_runtime(time_scale=0.002, env_overrides={"ImportPlanner": {"POST_IMPORT_POLICY": "sometimes"}})
    import_job_id = rt.simulate_import(image_sets=[SeedSpec(series=1, instances_per_series=1)])
    rt.run_until_idle(timeout=60)

    calls = rt.invocations_of("ImportPlanner")
    assert [c.ok for c in calls] == [False, False, False]
    assert {c.error_type for c in calls} == {"ConfigurationError"}
    [dead] = rt.queue_messages("ImportRuleDeadLetterQueue")
    assert dead["body"]["detail-type"] == "Import Job Completed"
    assert dead["body"]["detail"]["jobId"] == import_job_id
    assert "POST_IMPORT_POLICY" in dead["MessageAttributes"]["ErrorMessage"]
