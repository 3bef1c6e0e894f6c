"""Every trigger and every outcome, through the real synthesized state machine and the real handlers."""

from __future__ import annotations

import itertools
import json
import logging
import sys
from datetime import datetime

from hicopy.contract import COPY_REQUESTED, FAILED, REJECTED, SUCCEEDED
from offline.runtime import LocalRuntime
from tests.e2e.helpers import only_event, sop_uids, terminal_events


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_sqs_job_copies_a_whole_image_set(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=2, instances_per_series=2)
    rt.send_job({"jobId": "whole-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=30)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED
    detail = event["detail"]
    assert detail["jobId"] == "whole-1"
    assert detail["trigger"]["type"] == "sqs"
    assert detail["source"] == {"imageSetId": src.image_set_id, "versionId": src.version_id}
    dest = detail["destination"]["imageSetId"]
    assert dest != src.image_set_id
    assert sop_uids(rt.emulator.metadata(rt.datastore_id, dest)) == sop_uids(src.metadata)

    [execution] = rt.executions()
    assert execution.status == "SUCCEEDED"
    assert execution.job_id == "whole-1"
    assert execution.states[0] == "Prepare" and execution.states[-1] == "Done"
    assert detail["executionArn"] == execution.arn
    assert [c.status_code for c in rt.emulator.calls_to("CopyImageSet")] == [200]
    # The handlers' clock is the runtime's scaled clock: receivedAt (consumer) -> completedAt (publisher) spans
    # about 1/time_scale times the execution's real duration.
    virtual = (_ts(detail["completedAt"]) - _ts(detail["receivedAt"])).total_seconds()
    real = (execution.stop - execution.start).total_seconds()
    assert virtual > 0.5 * real / rt.time_scale, (virtual, real)


def test_copy_requested_event_copies_a_subset(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=2, instances_per_series=3)
    wanted = [src.instances[src.series_uids[0]][0], src.instances[src.series_uids[1]][2]]
    job = {"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}, "instances": wanted}
    event_id = rt.put_event(COPY_REQUESTED, {**job, "correlationId": "order-7"})
    rt.run_until_idle(timeout=30)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED
    detail = event["detail"]
    assert detail["trigger"]["type"] == "event"
    assert detail["jobId"] == event_id  # default job id of an event = the event id
    assert detail["correlationId"] == "order-7"
    copied = rt.emulator.metadata(rt.datastore_id, detail["destination"]["imageSetId"])
    assert sop_uids(copied) == set(wanted)


def test_copy_merges_into_an_existing_image_set(rt: LocalRuntime) -> None:
    dest = rt.seed_image_set(series=1, instances_per_series=2)
    src = rt.seed_image_set(
        series=1, instances_per_series=2, patient_id=None, study_uid=dest.study_uid, is_primary=False
    )
    rt.send_job(
        {
            "jobId": "merge-1",
            "datastoreId": rt.datastore_id,
            "source": {"imageSetId": src.image_set_id},
            "destination": {"imageSetId": dest.image_set_id},
            "force": True,
        }
    )
    rt.run_until_idle(timeout=30)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    detail = event["detail"]
    assert detail["destination"]["imageSetId"] == dest.image_set_id
    versions = rt.emulator.versions(rt.datastore_id, dest.image_set_id)
    assert [v["versionId"] for v in versions] == ["1", "2"]
    assert detail["destination"]["versionId"] == "2"
    merged = rt.emulator.metadata(rt.datastore_id, dest.image_set_id)
    assert sop_uids(merged) == sop_uids(dest.metadata) | sop_uids(src.metadata)


def test_copy_the_service_fails_reports_its_message(rt: LocalRuntime) -> None:
    src = rt.seed_image_set(series=1, instances_per_series=1)
    message = "INVALID_REQUEST:  Study of SourceImageSet and DestinationImageSet don't match."
    rt.emulator.fail_next_copy(message)
    rt.send_job({"jobId": "fails-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=30)

    event = only_event(rt)
    assert event["detail-type"] == FAILED
    assert event["detail"]["status"] == "FAILED"
    assert event["detail"]["reason"]["code"] == "CopyFailed"
    assert message in event["detail"]["reason"]["message"]
    [execution] = rt.executions()
    assert execution.status == "FAILED"
    assert execution.error == "CopyFailed"
    assert "PublishFailure" in execution.states


def test_invalid_job_is_rejected_and_kept_in_the_dlq(rt: LocalRuntime) -> None:
    body = {"datastoreId": rt.datastore_id, "source": {"imageSetId": "not-an-id"}, "colour": "blue"}
    message_id = rt.send_job(body)
    rt.run_until_idle(timeout=30)

    event = only_event(rt)
    assert event["detail-type"] == REJECTED
    detail = event["detail"]
    assert detail["reason"]["code"] == "JobRejected"
    assert json.loads(detail["originalBody"]) == body
    assert detail["trigger"] == {"type": "sqs", "messageId": message_id}
    [kept] = rt.dlq_messages()
    assert kept["body"] == body
    assert rt.executions() == []
    assert rt.queue_messages("JobQueue") == []


def test_duplicate_job_ids_give_one_execution_and_one_event(rt: LocalRuntime) -> None:
    src = rt.seed_image_set()
    job = {"jobId": "twice", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}}
    rt.send_job(job)
    rt.send_job(job)
    rt.run_until_idle(timeout=30)

    assert [e["detail-type"] for e in terminal_events(rt)] == [SUCCEEDED]
    assert len(rt.executions()) == 1
    assert len(rt.emulator.calls_to("CopyImageSet")) == 1


def test_a_large_copy_is_split_into_paced_chunks(rt: LocalRuntime) -> None:
    # 2 series x 3 instances x 300 frames = 1,800 frames > the 1,000-frame quota of one CopyImageSet.
    src = rt.seed_image_set(series=2, instances_per_series=3, frames_per_instance=300)
    rt.send_job({"jobId": "big-1", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
    rt.run_until_idle(timeout=60)

    event = only_event(rt)
    assert event["detail-type"] == SUCCEEDED, event["detail"].get("reason")
    detail = event["detail"]
    assert detail["chunks"] >= 2
    assert detail["chunksCompleted"] == detail["chunks"]
    copies = rt.emulator.calls_to("CopyImageSet")
    assert len(copies) == detail["chunks"]
    # Pace keeps CopyImageSet under 0.25/s (burst 1): consecutive calls are >= ~4 virtual seconds apart.
    starts = [c.at for c in copies]
    assert all(b - a >= 3.5 for a, b in itertools.pairwise(starts)), starts
    assert sop_uids(rt.emulator.metadata(rt.datastore_id, detail["destination"]["imageSetId"])) == sop_uids(
        src.metadata
    )


def test_handlers_run_in_their_own_warm_containers(rt: LocalRuntime) -> None:
    import hicopy.clock  # the test process's own copy, from functions/

    outer = sys.modules["hicopy.clock"]
    outer_clock = hicopy.clock.get_clock()
    service_logger = logging.getLogger("hicopy")  # configured by Powertools in each function's cold start
    logger_state = (service_logger.level, list(service_logger.handlers), getattr(service_logger, "init", None))
    for n in range(2):
        src = rt.seed_image_set()
        rt.send_job({"jobId": f"warm-{n}", "datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
        rt.run_until_idle(timeout=30)

    assert [e["detail"]["jobId"] for e in terminal_events(rt)] == ["warm-0", "warm-1"]
    for name in ("JobConsumer", "Prepare", "Pace", "Submit", "AwaitCopy", "Publish"):
        calls = rt.invocations_of(name)
        assert calls[0].cold_start and not any(c.cold_start for c in calls[1:]), name
    # The handlers' modules never replaced the test's own: same module object, clock untouched.
    assert sys.modules["hicopy.clock"] is outer
    assert hicopy.clock.get_clock() is outer_clock
    rt.stop()  # ...and once the runtime stops, the process-wide logging tree is as it was
    assert (service_logger.level, service_logger.handlers, getattr(service_logger, "init", None)) == logger_state
