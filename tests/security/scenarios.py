"""Every handler, driven through representative success and failure scenarios (the approach of
``tests/functional``), on image sets whose Patient/Study elements carry distinctive values (``PHI``).

One run records what the IAM check needs (every AWS operation, by handler) and what the no-PHI check needs (every
log line at DEBUG, every event published, every message we queued, every execution input and task output).

Scenarios (handler: success / failure):
- consumer: a valid job, the same job again (duplicate), jobs carrying PHI in unknown fields (raw and as an event);
- prepare/pace/submit/await_copy/publish: a whole copy, a merge that fails with the service's COPY_FAILED message,
  a missing image set, throttling on CopyImageSet (Submit abandons its record), and both reconciliation paths of a
  Submit that died around CopyImageSet (adopt the new image set via SearchImageSets / the destination version);
- delete_source: delete-after success, and the source gone before DeleteSource (caught into ``deletionError``);
- planner: consolidate an import with failed files (then the planned job runs end to end), the same event again,
  an import whose output omits ``isPrimary`` (GetImageSet), and a manifest that never appears (ManifestNotReady).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ReadTimeoutError

from hicopy.adapters.state_table import DynamoSubmissionStore
from hicopy.errors import ImageSetConflict, OrchestratorError, ServiceCallInterrupted, ServiceThrottled
from hicopy.handlers import (
    await_copy,
    consumer,
    copy_waker,
    delete_source,
    execution_ended,
    pace,
    planner,
    prepare,
    publish,
    receipt,
    submit,
)
from offline.healthimaging.dicom import build_metadata
from tests.support.calls import Call, CallRecorder
from tests.support.environment import AwsEnv, aws_environment, invoke
from tests.support.handlers import caught, sqs_record, string_attributes, task_event

# Distinctive values that must never leave the image sets (other than in a rejected job's own originalBody).
PHI: dict[str, str] = {
    "PatientName": "ZZPHI^MARGARETHE^QUINTESSA",
    "PatientID": "ZZPHI-PID-7734192",
    "PatientBirthDate": "19230817",
    "AccessionNumber": "ZZPHIACC90817",
    "StudyDescription": "ZZPHI CARDIAC MRI STRESS",
}
OTHER_PHI: dict[str, str] = {  # a second patient: the destination of a mismatching merge, re-imported data
    "PatientName": "ZZPHI^OTTOKAR^WENDELIN",
    "PatientID": "ZZPHI-PID-5521908",
    "PatientBirthDate": "19310402",
    "AccessionNumber": "ZZPHIACC55219",
    "StudyDescription": "ZZPHI PET ONCOLOGY WHOLE BODY",
}
ALL_PHI_VALUES = sorted({*PHI.values(), *OTHER_PHI.values()})


def phi_metadata(
    phi: dict[str, str],
    *,
    seed: int,
    series: int = 1,
    instances: int = 2,
    study_uid: str | None = None,
    series_uids: list[str] | None = None,
) -> dict[str, Any]:
    metadata = build_metadata(
        random.Random(seed),
        series=series,
        instances_per_series=instances,
        patient_id=phi["PatientID"],
        patient_name=phi["PatientName"],
        study_uid=study_uid,
        series_uids=series_uids,
    )
    metadata["Patient"]["DICOM"]["PatientBirthDate"] = phi["PatientBirthDate"]
    metadata["Study"]["DICOM"]["AccessionNumber"] = phi["AccessionNumber"]
    metadata["Study"]["DICOM"]["StudyDescription"] = phi["StudyDescription"]
    return metadata


# --- what a run produced ------------------------------------------------------------------------------------------
@dataclass
class LogCapture:
    """Everything written while the handlers ran: Powertools' JSON lines, other stdout (EMF metrics), and every
    ``logging`` record of any logger at DEBUG (``records``: (handler running or "", logger name, text))."""

    powertools: io.StringIO = field(default_factory=io.StringIO)
    stdout: io.StringIO = field(default_factory=io.StringIO)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    level: int = logging.NOTSET  # the Lambda code's logger level while the handlers ran

    def lines(self) -> list[str]:
        return self.powertools.getvalue().splitlines() + self.stdout.getvalue().splitlines()


_STANDARD_RECORD_KEYS = {*vars(logging.LogRecord("", 0, "", 0, "", (), None)), "message", "asctime"}


class _RecordSink(logging.Handler):
    def __init__(self, capture: LogCapture, recorder: CallRecorder) -> None:
        super().__init__(logging.DEBUG)
        self.capture, self.recorder = capture, recorder

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_KEYS}
        text = record.getMessage() + (f" {extras!r}" if extras else "")
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.capture.records.append((self.recorder.handler or "", record.name, text))


@contextmanager
def captured_logs(recorder: CallRecorder) -> Iterator[LogCapture]:
    """LOG_LEVEL=DEBUG for the Lambda code's Powertools logger (created at import time, so its level is set here
    too), its output redirected, stdout captured, and every logging record collected from the root at DEBUG."""
    from hicopy.observability import logger

    capture = LogCapture()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream = handler.setStream(capture.powertools)
    previous_level = logger.log_level
    root = logging.getLogger()
    previous_root = root.level
    sink = _RecordSink(capture, recorder)
    logger.setLevel("DEBUG")
    capture.level = logger.log_level
    root.setLevel(logging.DEBUG)
    root.addHandler(sink)
    try:
        with mock.patch.dict("os.environ", {"LOG_LEVEL": "DEBUG"}), redirect_stdout(capture.stdout):
            yield capture
    finally:
        root.removeHandler(sink)
        root.setLevel(previous_root)
        logger.setLevel(previous_level)
        handler.setStream(previous_stream)


@dataclass
class ScenarioRun:
    env: AwsEnv
    logs: LogCapture
    outputs: list[tuple[str, Any]] = field(default_factory=list)  # (handler, return value) of every invocation
    errors: list[tuple[str, str]] = field(default_factory=list)  # (handler, str(exception)) a handler raised
    events: list[dict[str, Any]] = field(default_factory=list)  # every event put on the bus
    dlq: list[dict[str, Any]] = field(default_factory=list)  # rejected-job messages
    job_queue: list[dict[str, Any]] = field(default_factory=list)  # jobs the planner queued
    execution_inputs: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)  # every AWS operation, by handler
    limit_problems: list[str] = field(default_factory=list)  # calls the real services would refuse
    variables: dict[str, str] = field(default_factory=dict)  # resource-naming environment variables of the run

    def call(self, module: Any, event: dict[str, Any]) -> Any:
        name = f"{module.__name__}.handler"
        try:
            result = invoke(self.env, module, event)
        except Exception as exc:
            self.errors.append((name, str(exc)))
            raise
        self.outputs.append((name, result))
        return result

    def task(self, module: Any, state: dict[str, Any], retry: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self.call(module, task_event(state, retry))
        return result

    def collect(self) -> None:
        self.events += self.env.events()


# --- the state machine, as tests/functional drives it ------------------------------------------------------------
def initial(env: AwsEnv, job_id: str, trigger: dict[str, Any] | None = None, **job: Any) -> dict[str, Any]:
    return {
        "job": {"jobId": job_id, "datastoreId": env.datastore_id, **job},
        "trigger": trigger or {"type": "sqs", "messageId": f"m-{job_id}"},
        "receivedAt": "2027-01-15T08:00:00.000Z",
    }


def _delete_pending(state: dict[str, Any]) -> bool:
    return (state.get("sourceDeletion") or {}).get("status") == "PENDING"


def drive(
    run: ScenarioRun, state: dict[str, Any], *, before_delete: Any = None, lose_publish_answer: bool = False
) -> dict[str, Any]:
    """Prepare → (Pace → Submit → AwaitCopy)* → [Pace → DeleteSource] → Publish; errors caught like the Catch
    clauses do. Returns the published event."""
    env = run.env
    try:
        state = run.task(prepare, state)
        while True:
            state = run.task(pace, state)
            env.clock.t += state["pace"]["waitSeconds"]
            if _delete_pending(state):
                if before_delete is not None:
                    before_delete()
                try:
                    state = run.task(delete_source, state)
                except OrchestratorError as exc:
                    state = caught(state, exc, "deletionError")
                break
            for attempt in range(6):
                try:
                    state = run.task(submit, state, attempt)
                    break
                except (ServiceThrottled, ImageSetConflict):
                    env.clock.t += 5
            while True:
                state = run.task(await_copy, state)
                if "awaiting" not in state:
                    break
                # WaitForCopyEvent: the waiter parks its token; HealthImaging's copy event (a hint) wakes it
                dest = state["submission"]["destination"]
                ds = state["job"]["datastoreId"]
                token = f"token-{state['job']['jobId']}-{state['awaiting']['checks']}"
                run.call(copy_waker, {"taskToken": token, "datastoreId": ds, **dest})
                env.clock.t += 4
                hint = {"imageSetVersion": dest["versionId"], "datastoreId": ds, "imageSetId": dest["imageSetId"]}
                run.call(
                    copy_waker, {"source": "aws.medical-imaging", "detail-type": "Image Set Copied", "detail": hint}
                )
            if state["done"] and not _delete_pending(state):
                break
    except OrchestratorError as exc:
        state = caught(state, exc)
    if lose_publish_answer:  # the event is put, its answer lost: the retry finds its receipt and puts nothing
        with _put_events_answer_lost(), contextlib.suppress(ServiceCallInterrupted):
            run.task(publish, state)
            raise AssertionError("the lost answer did not reach Publish")
        for event in env.events():
            run.events.append(event)
            assert run.call(receipt, event)["receipt"] == "outcome"
        env.clock.t += 3
        run.task(publish, state, 1)
        assert env.events() == [], "the retried Publish put its event again"
        return run.events[-1]
    run.task(publish, state)
    published = env.events()
    run.events += published
    assert len(published) == 1, published
    return published[0]


# --- scenarios ----------------------------------------------------------------------------------------------------
def consumer_scenarios(run: ScenarioRun) -> None:
    env = run.env
    good = {"jobId": "c-good", "datastoreId": env.datastore_id, "source": {"imageSetId": "a" * 32}}
    with_phi = {
        "datastoreId": env.datastore_id,
        "source": {"imageSetId": "a" * 32, "PatientName": PHI["PatientName"]},
        "PatientID": PHI["PatientID"],
        "patient": {"PatientBirthDate": PHI["PatientBirthDate"], "AccessionNumber": PHI["AccessionNumber"]},
        "StudyDescription": PHI["StudyDescription"],
    }
    event = {"id": "evt-phi", "detail-type": "Copy Requested", "source": "pacs", "detail": with_phi}
    records = [
        sqs_record(json.dumps(good), "00000000-0000-4000-8000-00000000c001"),
        sqs_record(json.dumps(good), "00000000-0000-4000-8000-00000000c002"),  # duplicate
        sqs_record(json.dumps(with_phi), "00000000-0000-4000-8000-00000000c003"),
        sqs_record(json.dumps(event), "00000000-0000-4000-8000-00000000c004"),
    ]
    result = run.call(consumer, {"Records": records})
    assert result == {"batchItemFailures": []}
    run.collect()
    run.dlq += env.dlq()
    assert len(run.dlq) == 2


def safety_net_scenarios(run: ScenarioRun) -> None:
    """An execution the consumer started ends TIMED_OUT without its event: the safety net reads its history, then
    (the status change event left the input out) DescribeExecution, and publishes one failure event."""
    env = run.env
    [execution] = [e for e in env.executions() if e["name"] == "c-good"]
    detail = {
        "executionArn": execution["executionArn"],
        "stateMachineArn": env.state_machine_arn,
        "name": execution["name"],
        "status": "TIMED_OUT",
        "input": None,
        "inputDetails": {"included": False},
    }
    ended = {"detail-type": "Step Functions Execution Status Change", "detail": detail}
    # PutEvents accepts the failure event but its answer is lost: the attempt is recorded pending (receipt#...).
    with _put_events_answer_lost(), contextlib.suppress(ServiceCallInterrupted):
        run.call(execution_ended, ended)
        raise AssertionError("the lost answer did not reach the safety net")
    run.collect()
    ours = [
        e for e in run.events if e.get("detail-type") in ("Copy Job Succeeded", "Copy Job Failed", "Copy Job Rejected")
    ]
    assert [e["detail-type"] for e in ours].count("Copy Job Failed") == 1, ours
    # The rule on our bus hands each of our terminal and rejection events to the receipt function.
    for event in ours:
        assert run.call(receipt, event)["receipt"] in ("outcome", "rejection")
    again = run.call(execution_ended, ended)
    assert again == {"status": "TIMED_OUT", "published": None}, again  # the receipt: marked, not put again
    once_more = run.call(execution_ended, ended)
    assert once_more["published"] is None  # the outcome marker: never a second event
    run.collect()
    assert [e["detail-type"] for e in run.events].count("Copy Job Failed") == 1


@contextmanager
def _put_events_answer_lost() -> Iterator[None]:
    """The next PutEvents is served, then its answer is lost (a read timeout after the call)."""

    lost: list[bool] = []

    def lose(**kwargs: Any) -> None:
        if not lost:
            lost.append(True)
            raise ReadTimeoutError(endpoint_url="https://events.injected.amazonaws.com/")

    boto3.DEFAULT_SESSION._session.register(  # type: ignore[union-attr]
        "after-call.events.PutEvents", lose, unique_id="hicopy-lost-answer"
    )
    try:
        yield
    finally:
        boto3.DEFAULT_SESSION._session.unregister(  # type: ignore[union-attr]
            "after-call.events.PutEvents", unique_id="hicopy-lost-answer"
        )


def copy_scenarios(run: ScenarioRun) -> None:
    env, emu, ds = run.env, run.env.emulator, run.env.datastore_id
    source = emu.seed_image_set_from_metadata(ds, phi_metadata(PHI, seed=1, series=2))
    other = emu.seed_image_set_from_metadata(ds, phi_metadata(OTHER_PHI, seed=2))

    # Whole copy to a new image set: success.
    done = drive(run, initial(env, "cp-whole", source={"imageSetId": source.image_set_id}), lose_publish_answer=True)
    assert done["detail-type"] == "Copy Job Succeeded", done
    # Merge into another patient's image set: COPY_FAILED, the service's message in the failure event.
    failed = drive(
        run,
        initial(
            env,
            "cp-mismatch",
            source={"imageSetId": source.image_set_id},
            destination={"imageSetId": other.image_set_id},
        ),
    )
    assert failed["detail"]["reason"]["code"] == "CopyFailed", failed
    # A missing image set: Prepare fails (ImageSetNotFound).
    missing = drive(run, initial(env, "cp-missing", source={"imageSetId": "0" * 32}))
    assert missing["detail"]["reason"]["code"] == "ImageSetNotFound", missing
    # Throttled CopyImageSet: Submit abandons its record (DeleteItem), the retry copies once.
    emu.inject_fault("CopyImageSet", "ThrottlingException", times=1)
    throttled = drive(
        run, initial(env, "cp-throttled", source={"imageSetId": source.image_set_id}, series=[source.series_uids[0]])
    )
    assert throttled["detail-type"] == "Copy Job Succeeded", throttled
    # A Submit that died after CopyImageSet returned: the retry waits for the copy in flight (ImageSetConflict,
    # retried by the state machine), then adopts the new image set that holds the chunk (SearchImageSets).
    state = run.task(pace, run.task(prepare, initial(env, "cp-died", source={"imageSetId": source.image_set_id})))
    env.clock.t += state["pace"]["waitSeconds"]
    with (
        mock.patch.object(DynamoSubmissionStore, "complete", side_effect=RuntimeError("Lambda timed out")),
        contextlib.suppress(RuntimeError),
    ):
        run.task(submit, state)
    for retry in range(1, 8):
        try:
            again = run.task(submit, state, retry)
            break
        except ImageSetConflict:
            env.clock.t += 5
    assert again["submission"]["replayed"] is True
    env.clock.t += 20
    run.task(await_copy, again)


def _sibling(metadata: dict[str, Any]) -> dict[str, Any]:
    """The same Patient/Study/Series with new SOP Instance UIDs (mergeable without force)."""
    out = copy.deepcopy(metadata)
    for n, series in enumerate(out["Study"]["Series"].values()):
        series["Instances"] = {
            f"2.25.9{n}{k}{sop[-6:]}": {**inst, "DICOM": {**inst["DICOM"], "SOPInstanceUID": f"2.25.9{n}{k}{sop[-6:]}"}}
            for k, (sop, inst) in enumerate(series["Instances"].items())
        }
    return out


def _planned(env: Any, job_id: str, source: Any, trigger: dict[str, Any]) -> None:
    """What the import planner records before it queues a delete-after job (the workflow checks it)."""
    from hicopy.adapters.state_table import PlanRecords
    from hicopy.domain.ports import PlannedCopy
    from tests.support.aws import TABLE

    plan = PlannedCopy(
        job_id=job_id,
        datastore_id=env.datastore_id,
        import_job_id=trigger["importJobId"],
        source_image_set_id=source.image_set_id,
        source_version_id=str(source.version_id),
        destination_image_set_id=None,
        whole_copy=True,
        delete_source=True,
    )
    PlanRecords(TABLE).record(plan, env.clock.now())


def delete_after_scenarios(run: ScenarioRun) -> None:
    env, emu, ds = run.env, run.env.emulator, run.env.datastore_id
    trigger = {"type": "import", "importJobId": "1" * 32, "policy": "promote", "deleteSourceAfterCopy": True}
    source = emu.seed_image_set_from_metadata(ds, phi_metadata(OTHER_PHI, seed=3), is_primary=False)
    _planned(env, "del-ok", source, trigger)
    deleted = drive(
        run, initial(env, "del-ok", trigger, source={"imageSetId": source.image_set_id}, promoteToPrimary=True)
    )
    assert deleted["detail"]["sourceDeletion"] == {"status": "DELETED"}, deleted
    # A queue sender's hicopyTrigger asking for the deletion of a job the planner never planned: nothing deleted.
    forged = emu.seed_image_set_from_metadata(ds, phi_metadata(OTHER_PHI, seed=9), is_primary=False)
    refused = drive(
        run, initial(env, "del-forged", trigger, source={"imageSetId": forged.image_set_id}, promoteToPrimary=True)
    )
    assert refused["detail"]["sourceDeletion"]["status"] == "REFUSED", refused
    # The source disappears before DeleteSource runs: the deletion fails, the copy still succeeded.
    second = emu.seed_image_set_from_metadata(ds, phi_metadata(PHI, seed=4), is_primary=False)
    _planned(env, "del-gone", second, trigger)

    def vanish() -> None:
        boto3.client("medical-imaging").delete_image_set(datastoreId=ds, imageSetId=second.image_set_id)
        env.clock.t += 10  # let DeleteImageSet's rate limit refill: DeleteSource must fail on the image set

    gone = drive(
        run,
        initial(env, "del-gone", trigger, source={"imageSetId": second.image_set_id}, promoteToPrimary=True),
        before_delete=vanish,
    )
    assert gone["detail"]["sourceDeletion"]["status"] == "FAILED", gone


def _import_event(run: ScenarioRun, job_id: str) -> dict[str, Any]:
    detail = next(
        e.detail
        for e in reversed(run.env.emulator.events)
        if e.detail_type.startswith("Import Job") and e.detail.get("jobId") == job_id
    )
    status = "Import Job Completed" if detail.get("jobStatus") == "COMPLETED" else "Import Job Failed"
    return {
        "version": "0",
        "id": f"e-{job_id}",
        "detail-type": status,
        "source": "aws.medical-imaging",
        "detail": detail,
    }


def _write_without_is_primary(uri: str, data: bytes) -> None:
    """An import output writer that drops ``isPrimary`` (the planner then asks GetImageSet)."""
    parts = urlsplit(uri)
    text = data.decode()
    if parts.path.endswith(".json"):
        manifest = json.loads(text)
        for entry in manifest.get("jobSummary", {}).get("imageSetsSummary", []):
            entry.pop("isPrimary", None)
        text = json.dumps(manifest)
    elif parts.path.endswith(".ndjson"):
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        for line in lines:
            (line.get("importResponse") or {}).pop("isPrimary", None)
        text = "\n".join(json.dumps(line) for line in lines)
    boto3.client("s3").put_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"), Body=text.encode())


def planner_scenarios(run: ScenarioRun) -> None:
    env, emu, ds = run.env, run.env.emulator, run.env.datastore_id
    primary = emu.seed_image_set_from_metadata(ds, phi_metadata(PHI, seed=5))
    # Re-imported data of the same Study/Series with another patient's elements: a non-primary image set.
    reimport = phi_metadata(OTHER_PHI, seed=6, study_uid=primary.study_uid, series_uids=list(primary.series_uids))
    job_id = emu.simulate_import(
        ds,
        input_s3_uri="s3://imports/in/",
        output_s3_uri="s3://imports/out/",
        image_sets=[reimport],
        # S3 keys often carry patient names, and the service's messages quote them.
        failures=[
            (
                f"in/{PHI['PatientName']}/{PHI['PatientID']}/broken-0001.dcm",
                "ValidationException",
                f"in/{PHI['PatientName']}/broken-0001.dcm: DICOM attribute TransferSyntaxUID does not exist",
            )
        ],
    )
    event = _import_event(run, job_id)
    outcome = run.call(planner, event)
    assert len(outcome["planned"]) == 1 and outcome["failedFiles"] == 1, outcome
    run.collect()
    assert run.call(planner, event)["duplicate"] is True

    # The planned job, through the consumer and the state machine (a merge across patients: COPY_FAILED).
    queued = env.job_queue()
    run.job_queue += queued
    records = [
        sqs_record(
            m["Body"],
            m["MessageId"],
            string_attributes({k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}),
        )
        for m in queued
    ]
    assert run.call(consumer, {"Records": records}) == {"batchItemFailures": []}
    for execution in env.executions():
        if execution["name"].startswith("imp-"):
            run.execution_inputs.append(execution["input"])
            drive(run, json.loads(execution["input"]))

    # Output without isPrimary: the planner asks GetImageSet.
    second = emu.simulate_import(
        ds,
        input_s3_uri="s3://imports/in2/",
        output_s3_uri="s3://imports/out2/",
        image_sets=[phi_metadata(OTHER_PHI, seed=7)],
        write_manifest=_write_without_is_primary,
    )
    run.call(planner, _import_event(run, second))
    run.collect()
    run.job_queue += env.job_queue()

    # A manifest that never appears: the planner waits its budget, then ManifestNotReady (EventBridge retries).
    lost = emu.simulate_import(
        ds,
        input_s3_uri="s3://imports/in3/",
        output_s3_uri="s3://imports/out3/",
        image_sets=[phi_metadata(PHI, seed=8)],
        write_manifest=lambda uri, data: None,
    )
    with contextlib.suppress(OrchestratorError):
        run.call(planner, _import_event(run, lost))
    assert run.errors and "not there yet" in run.errors[-1][1]
    run.collect()


def scenario_run() -> ScenarioRun:
    """Run every scenario once and return what it produced; the AWS environment is closed again (nothing of it
    leaks into other tests)."""
    with aws_environment() as env, captured_logs(env.recorder) as logs:
        run = ScenarioRun(env, logs)
        consumer_scenarios(run)
        safety_net_scenarios(run)
        copy_scenarios(run)
        delete_after_scenarios(run)
        planner_scenarios(run)
        run.execution_inputs += [e["input"] for e in env.executions()]
        run.dlq += env.dlq()
        run.calls = list(env.recorder.calls)
        run.limit_problems = list(env.recorder.problems)
        run.variables = {k: os.environ[k] for k in HANDLER_VARIABLES if k in os.environ}
    return run


# The handlers' environment variables that name AWS resources (the IAM check maps them to template resources).
HANDLER_VARIABLES = ("EVENT_BUS_NAME", "STATE_MACHINE_ARN", "REJECTED_QUEUE_URL", "JOB_QUEUE_URL", "STATE_TABLE_NAME")
