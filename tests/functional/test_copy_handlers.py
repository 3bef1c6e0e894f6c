"""Each state-machine task handler, driven in the state machine's order against the emulator and moto."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from hicopy.clock import parse_iso
from hicopy.contract import FAILED, SUCCEEDED
from hicopy.errors import ImageSetConflict, OrchestratorError, ServiceThrottled
from hicopy.handlers import await_copy, pace, prepare, publish, submit
from tests.functional.conftest import Stack, task
from tests.support.contracts import assert_valid_event
from tests.support.handlers import caught, clear_handler_caches


def initial(stack: Stack, **job: Any) -> dict[str, Any]:
    body = {"jobId": job.pop("jobId", "job-1"), "datastoreId": stack.datastore_id, **job}
    return {"job": body, "trigger": {"type": "sqs", "messageId": "m-1"}, "receivedAt": "2026-11-27T00:00:00.000Z"}


def run(stack: Stack, state: dict[str, Any], *, retries: int = 5) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drive Prepare → (Pace → Submit → AwaitCopy)* → Publish like the state machine does; return (state, event)."""
    try:
        state = task(prepare, state)
        while not state["done"]:
            state = task(pace, state)
            stack.clock.t += state["pace"]["waitSeconds"]
            for attempt in range(retries):
                try:
                    state = task(submit, state, attempt)
                    break
                except (ServiceThrottled, ImageSetConflict):
                    stack.clock.t += 5
            else:
                raise AssertionError("submit never succeeded")
            while True:
                state = task(await_copy, state)
                if "awaiting" not in state:  # the chunk is copied
                    break
                stack.clock.t += 4
    except OrchestratorError as exc:
        state = caught(state, exc)
    task(publish, state)
    (event,) = stack.events()
    assert_valid_event(event["detail-type"], event["detail"], event["source"])
    return state, event


def sibling(stack: Stack, image_set_id: str, *, is_primary: bool = False) -> Any:
    """A non-primary image set with the same Patient/Study/Series as ``image_set_id`` but new instances (e.g. a
    re-import), so that it can be merged into it without ``force``."""
    meta = copy.deepcopy(stack.emulator.metadata(stack.datastore_id, image_set_id))
    for series in meta["Study"]["Series"].values():
        series["Instances"] = {
            f"2.25.{uuid.uuid4().int}": {**inst, "DICOM": {**inst["DICOM"], "SOPInstanceUID": None}}
            for inst in series["Instances"].values()
        }
        for sop, inst in series["Instances"].items():
            inst["DICOM"]["SOPInstanceUID"] = sop
    return stack.emulator.seed_image_set_from_metadata(stack.datastore_id, meta, is_primary=is_primary)


def copied_sops(stack: Stack, image_set_id: str) -> set[str]:
    meta = stack.emulator.metadata(stack.datastore_id, image_set_id)
    return {sop for s in meta["Study"]["Series"].values() for sop in s["Instances"]}


def test_whole_copy_to_a_new_image_set(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id, series=2, instances_per_series=3)
    _state, event = run(stack, initial(stack, source={"imageSetId": src.image_set_id}))
    assert event["detail-type"] == SUCCEEDED
    dest = event["detail"]["destination"]["imageSetId"]
    assert dest != src.image_set_id and copied_sops(stack, dest) == copied_sops(stack, src.image_set_id)
    assert event["detail"]["statusChecks"] >= 2 and event["detail"]["chunks"] == 1
    (call,) = stack.emulator.calls_to("CopyImageSet")
    assert "DICOMCopies" not in json.dumps(call.params)  # a whole copy sends no copiableAttributes


def test_merge_into_an_existing_image_set(stack: Stack):
    dst = stack.emulator.seed_image_set(stack.datastore_id, instances_per_series=2)
    src = sibling(stack, dst.image_set_id)
    _, event = run(
        stack, initial(stack, source={"imageSetId": src.image_set_id}, destination={"imageSetId": dst.image_set_id})
    )
    assert event["detail-type"] == SUCCEEDED
    assert event["detail"]["destination"] == {"imageSetId": dst.image_set_id, "versionId": "2"}
    assert copied_sops(stack, dst.image_set_id) >= copied_sops(stack, src.image_set_id)


def test_subset_by_instances_and_by_series(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id, series=2, instances_per_series=3)
    s1, s2 = src.series_uids
    picked = [src.instances[s1][1], src.instances[s2][0]]
    _, by_instances = run(
        stack, initial(stack, jobId="j-inst", source={"imageSetId": src.image_set_id}, instances=picked)
    )
    assert copied_sops(stack, by_instances["detail"]["destination"]["imageSetId"]) == set(picked)
    (call,) = stack.emulator.calls_to("CopyImageSet")
    attrs = json.loads(call.params["copyImageSetInformation"]["sourceImageSet"]["DICOMCopies"]["copiableAttributes"])
    assert set(attrs["Study"]["Series"]) == {s1, s2}  # keyed by Series Instance UID
    _, by_series = run(stack, initial(stack, jobId="j-series", source={"imageSetId": src.image_set_id}, series=[s2]))
    assert copied_sops(stack, by_series["detail"]["destination"]["imageSetId"]) == set(src.instances[s2])


def test_metadata_mismatch_fails_with_the_service_message_unless_forced(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id, patient_id="P-1")
    dst = stack.emulator.seed_image_set(stack.datastore_id, patient_id="P-2")
    _, failed = run(
        stack,
        initial(
            stack, jobId="j-1", source={"imageSetId": src.image_set_id}, destination={"imageSetId": dst.image_set_id}
        ),
    )
    assert failed["detail-type"] == FAILED and failed["detail"]["reason"]["code"] == "CopyFailed"
    service_message = stack.emulator.image_set(stack.datastore_id, dst.image_set_id, "2")["message"]
    assert failed["detail"]["reason"]["message"] == service_message
    _, forced = run(
        stack,
        initial(
            stack,
            jobId="j-2",
            source={"imageSetId": src.image_set_id},
            destination={"imageSetId": dst.image_set_id},
            force=True,
        ),
    )
    assert forced["detail-type"] == SUCCEEDED and forced["detail"]["force"] is True
    version = forced["detail"]["destination"]["versionId"]
    assert stack.emulator.image_set(stack.datastore_id, dst.image_set_id, version)["overrides"]["forced"] is True


def test_promote_to_primary(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id, is_primary=False)
    _, event = run(stack, initial(stack, source={"imageSetId": src.image_set_id}, promoteToPrimary=True))
    assert event["detail-type"] == SUCCEEDED and event["detail"]["promoteToPrimary"] is True
    new = event["detail"]["destination"]["imageSetId"]
    assert stack.emulator.image_set(stack.datastore_id, new)["isPrimary"] is True


def test_stale_and_missing_versions_and_image_sets(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id)
    _, stale = run(stack, initial(stack, jobId="j-1", source={"imageSetId": src.image_set_id, "versionId": "9"}))
    assert stale["detail"]["reason"]["code"] == "StaleVersion" and stale["detail"]["chunks"] == 0
    _, missing = run(stack, initial(stack, jobId="j-2", source={"imageSetId": "0" * 32}))
    assert missing["detail"]["reason"]["code"] == "ImageSetNotFound"
    assert stack.emulator.calls_to("CopyImageSet") == []


def test_locked_image_set_is_a_retryable_conflict(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id)
    stack.emulator.lock(stack.datastore_id, src.image_set_id, seconds=30)
    with pytest.raises(ImageSetConflict):
        task(prepare, initial(stack, source={"imageSetId": src.image_set_id}))
    stack.clock.t += 31
    _, event = run(stack, initial(stack, source={"imageSetId": src.image_set_id}))
    assert event["detail-type"] == SUCCEEDED


def test_throttling_and_conflicts_on_submit_are_retried_without_a_second_copy(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id)
    stack.emulator.inject_fault("CopyImageSet", "ThrottlingException", times=2)
    stack.emulator.inject_fault("CopyImageSet", "ConflictException", times=1)
    _, event = run(stack, initial(stack, source={"imageSetId": src.image_set_id}))
    assert event["detail-type"] == SUCCEEDED
    codes = [c.error_code for c in stack.emulator.calls_to("CopyImageSet")]
    assert codes == ["ThrottlingException", "ThrottlingException", "ConflictException", None]


def test_submit_retried_after_success_does_not_copy_again(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id)
    state = task(pace, task(prepare, initial(stack, source={"imageSetId": src.image_set_id})))
    first = task(submit, state)
    again = task(submit, state, retry=1)  # e.g. Step Functions retried after a Lambda service error
    assert again["submission"]["replayed"] is True
    assert again["submission"]["destination"] == first["submission"]["destination"]
    assert len(stack.emulator.calls_to("CopyImageSet")) == 1


def test_chunked_copy_reports_chunks(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MAX_FRAMES_PER_COPY", "4")
    clear_handler_caches()
    src = stack.emulator.seed_image_set(stack.datastore_id, series=2, instances_per_series=5)
    _, event = run(stack, initial(stack, source={"imageSetId": src.image_set_id}))
    assert event["detail-type"] == SUCCEEDED and event["detail"]["chunks"] == 3
    dest = event["detail"]["destination"]["imageSetId"]
    assert copied_sops(stack, dest) == copied_sops(stack, src.image_set_id)
    assert [c["index"] for c in event["detail"]["completedChunks"]] == [0, 1, 2]


def emitted_metrics(stdout: str) -> dict[str, tuple[str, float]]:
    """name -> (unit, value) of every metric in the EMF documents the handlers printed."""
    found: dict[str, tuple[str, float]] = {}
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                found[metric["Name"]] = (metric["Unit"], value[0] if isinstance(value, list) else value)
    return found


@pytest.mark.parametrize("frames_per_copy", [1000, 4])
def test_a_succeeded_job_reports_its_copy_duration(stack: Stack, monkeypatch, capsys, frames_per_copy):
    monkeypatch.setenv("MAX_FRAMES_PER_COPY", str(frames_per_copy))
    clear_handler_caches()
    src = stack.emulator.seed_image_set(stack.datastore_id, series=2, instances_per_series=5)
    capsys.readouterr()
    state, event = run(stack, initial(stack, source={"imageSetId": src.image_set_id}))
    metrics = emitted_metrics(capsys.readouterr().out)
    detail = event["detail"]
    assert event["detail-type"] == SUCCEEDED and metrics["JobsSucceeded"] == ("Count", 1)
    unit, seconds = metrics["CopyDurationSeconds"]
    assert unit == "Seconds"
    # First submission to the completion of the last chunk (as AwaitCopy saw it), on the test's clock.
    assert seconds == pytest.approx(parse_iso(state["completed"][-1]["completedAt"]) - parse_iso(detail["submittedAt"]))
    # Each of the emulator's copies takes 10 s, one after the other; the event is published afterwards.
    assert 10 * detail["chunks"] <= seconds <= parse_iso(detail["completedAt"]) - parse_iso(detail["submittedAt"])


def test_failure_in_a_later_chunk_says_which_chunk_and_what_was_copied(stack: Stack, monkeypatch, capsys):
    monkeypatch.setenv("MAX_FRAMES_PER_COPY", "2")
    clear_handler_caches()
    src = stack.emulator.seed_image_set(stack.datastore_id, instances_per_series=5)
    state = task(prepare, initial(stack, source={"imageSetId": src.image_set_id}))
    assert state["plan"]["chunkCount"] == 3
    # chunk 0 succeeds, chunk 1 fails in the service
    state = task(pace, state)
    stack.clock.t += state["pace"]["waitSeconds"]
    state = task(submit, state)
    stack.clock.t += 20
    state = task(await_copy, task(await_copy, state))  # the first wait (no check), then the status check
    stack.emulator.fail_next_copy("INVALID_REQUEST:  chunk two rejected")
    state = task(pace, state)
    stack.clock.t += state["pace"]["waitSeconds"] + 1
    state = task(submit, state)
    stack.clock.t += 20
    state = task(await_copy, state)  # the first wait
    with pytest.raises(OrchestratorError) as exc:
        task(await_copy, state, retry=2)
    capsys.readouterr()
    task(publish, caught(state, exc.value))
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsFailed"] == ("Count", 1) and "CopyDurationSeconds" not in metrics  # only for successes
    (event,) = stack.events()
    d = event["detail"]
    assert d["failedChunk"] == 1 and d["chunksCompleted"] == 1 and d["chunks"] == 3
    assert d["reason"] == {"code": "CopyFailed", "message": "INVALID_REQUEST:  chunk two rejected"}
    assert d["completedChunks"][0]["index"] == 0 and d["destination"]["imageSetId"]
    assert_valid_event(event["detail-type"], d)


@pytest.mark.parametrize("existing_destination", [False, True])
def test_submit_that_died_after_calling_is_reconciled_not_repeated(stack: Stack, monkeypatch, existing_destination):
    from hicopy.adapters.state_table import DynamoSubmissionStore

    dst = stack.emulator.seed_image_set(stack.datastore_id, instances_per_series=2)
    src = sibling(stack, dst.image_set_id)
    job: dict[str, Any] = {"source": {"imageSetId": src.image_set_id}}
    if existing_destination:
        job["destination"] = {"imageSetId": dst.image_set_id}
    state = task(pace, task(prepare, initial(stack, **job)))
    real_complete = DynamoSubmissionStore.complete

    def die(self, record):  # the Lambda is killed after CopyImageSet returned, before recording it
        raise RuntimeError("Lambda timed out")

    monkeypatch.setattr(DynamoSubmissionStore, "complete", die)
    with pytest.raises(RuntimeError):
        task(submit, state)
    monkeypatch.setattr(DynamoSubmissionStore, "complete", real_complete)
    stack.clock.t += 20  # a new image set tells whether it is ours only once its copy completed
    again = task(submit, state, retry=1)
    assert again["submission"]["replayed"] is True
    assert len(stack.emulator.calls_to("CopyImageSet")) == 1
    stack.clock.t += 20
    done = task(await_copy, task(await_copy, again))  # the first wait, then the status check
    assert done["done"] is True


def test_publish_after_a_crash_post_putevents_sends_nothing_more(stack: Stack):
    src = stack.emulator.seed_image_set(stack.datastore_id)
    state, first = run(stack, initial(stack, source={"imageSetId": src.image_set_id}))
    assert first["detail-type"] == SUCCEEDED
    # Step Functions retries Publish (or runs PublishFailure) after the Lambda died once its event was out.
    task(publish, state, retry=1)
    task(publish, caught(state, OrchestratorError("Lambda died after PutEvents")))
    assert stack.events() == []


def test_a_source_updated_between_prepare_and_submit_is_replanned_and_copied_from_its_new_version(stack: Stack):
    """As UpdateImageSetMetadata with includeStudyImageSets does to every primary image set of the study: the job
    (no pinned version) is planned again on the new latest version instead of failing StaleVersion."""
    src = stack.emulator.seed_image_set(stack.datastore_id)
    state = task(prepare, initial(stack, source={"imageSetId": src.image_set_id}))
    updates = {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "CT CHEST (corrected)"}}}
    stack.client("medical-imaging").update_image_set_metadata(
        datastoreId=stack.datastore_id,
        imageSetId=src.image_set_id,
        latestVersionId=state["plan"]["source"]["versionId"],
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": json.dumps(updates).encode()}},
    )
    stack.clock.t += 5
    state = task(pace, state)
    stack.clock.t += state["pace"]["waitSeconds"]
    state = task(submit, state)
    assert state["plan"]["source"]["versionId"] == "2" and state["plan"]["sourceReplans"] == 1
    [call] = stack.emulator.calls_to("CopyImageSet")
    assert call.params["copyImageSetInformation"]["sourceImageSet"]["latestVersionId"] == "2"
