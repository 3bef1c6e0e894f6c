"""``LocalRuntime``: the whole orchestrator on one machine, with no AWS account and no Docker.

What runs, and what is real:

- the **real CDK app** (``infra.app_factory.build_app``), synthesized without bundling into a cached ``cdk.out``;
- its **real template**, deployed into moto's CloudFormation (moto's gaps are bridged in ``offline.runtime.cfn``);
- the **real state machine definition**, executed by moto's Step Functions interpreter (Retry/Backoff/Jitter/
  Catch/Choice/Wait are real), with ``Retry`` and ``Wait`` time scaled;
- the **real Lambda handlers** from the function code asset, run in-process (one warm "container" per function);
- SQS -> Lambda through a poller with Lambda's real batch semantics (``batchItemFailures``, visibility timeout,
  redrive to the DLQ after ``maxReceiveCount``);
- EventBridge rules delivering to SQS, Lambda (asynchronous invoke with retries + DLQ) and Step Functions targets;
- HealthImaging: the in-process emulator (``offline.healthimaging``) on a botocore ``before-send`` hook; its events
  go to the default bus with source ``aws.medical-imaging``.

One clock (``offline.clock.ScaledClock(time_scale)``) drives the handlers (``hicopy.clock``), the emulator,
Step Functions ``Retry``/``Wait`` and the visibility timeouts: ``time_scale=0.01`` runs 100 virtual seconds in one
real second.

One module per job: ``deploy`` (the assembly into moto; ``Deployment`` says where everything is), ``lambdas``
(the handlers), ``sqs_poller`` and ``eventbridge`` (SQS -> Lambda, rule targets, asynchronous invocations),
``patches`` (the moto internals that hand work to those), ``drive`` (the event loop behind ``run_until_idle``),
``inspection`` (executions, histories, events, queue contents) and ``progress`` (``progress=callback``). This
module holds the options, the lifecycle (``start``/``stop`` wire the parts together), the triggers (``send_job``,
``put_event``) and the rest of the public API, which hands each call to its part.

Usage::

    with LocalRuntime(time_scale=0.01) as rt:
        src = rt.seed_image_set(series=2, instances_per_series=3)
        rt.send_job({"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
        rt.run_until_idle(timeout=30)
        print(rt.completion_events())
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from offline.clock import ScaledClock
from offline.runtime.deploy import ACCOUNT, REGION, Deployment, attach_event_source_mappings, deploy, load_assembly
from offline.runtime.drive import Driver, IdleReport
from offline.runtime.eventbridge import AsyncInvoker, EventRouter, default_bus_sink
from offline.runtime.inspection import (
    Attempt,
    ExecutionInfo,
    ExecutionTracker,
    attempts_of,
    events_on,
    orchestrator_events,
    peek_queue,
)
from offline.runtime.lambdas import Invocation, LambdaRunner, LoggingSnapshot
from offline.runtime.patches import MotoPatches, RetrySleep
from offline.runtime.progress import Progress, ProgressReporter
from offline.runtime.sqs_poller import BatchResult, SqsPoller
from offline.runtime.status_events import ExecutionStatusEvents

if TYPE_CHECKING:  # imported at start-up: the emulator imports hicopy, which start() makes importable
    from hicopy.contract import Policy
    from offline.healthimaging import HealthImagingEmulator, SeededImageSet


DEFAULT_DATASTORE_ID = "localdatastore000000000000000001"
IMPORT_INPUT_BUCKET = "hicopy-local-import-input"
IMPORT_OUTPUT_BUCKET = "hicopy-local-import-output"
POST_IMPORT_POLICY: Policy = "consolidate"

# The synth context of the local runtime (merged under ``config_overrides``): one fixed data store, the import
# output bucket and the consolidate policy (with force: an import's non-primary image sets conflict with their
# primary by definition), so that every trigger can be exercised.
LOCAL_CONFIG: dict[str, Any] = {
    "datastoreIds": [DEFAULT_DATASTORE_ID],
    "importOutputBuckets": [IMPORT_OUTPUT_BUCKET],
    "postImportPolicy": POST_IMPORT_POLICY,
    "consolidateForce": True,
}

# Environment forced on every handler: no X-Ray daemon here.
FORCED_HANDLER_ENV = {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_XRAY_SDK_ENABLED": "false"}

# The process environment while the runtime runs: every boto3 client talks to moto's fake account.
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

_T = TypeVar("_T")

# moto's Step Functions interpreter logs every state failure at ERROR level with the whole error and cause (a Lambda
# stack trace, a job's image set IDs): for a task error or a Fail state that is the workflow's own outcome, already
# in the execution history. Those records are dropped; any other interpreter exception still shows.
_ASL_LOGGER = "moto.stepfunctions.parser.asl.component.eval_component"


# What moto's interpreter logs at ERROR for the workflow's own control flow: a task's failure the state machine
# catches, and a Choice's ``IsPresent`` on a path that is absent (``$.awaiting`` once a copy is done).
_WORKFLOW_OUTCOMES = ("Exception=FailureEventException", "Exception=NoSuchJsonPathError")


def _not_a_workflow_outcome(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_WORKFLOW_OUTCOMES)


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _started(part: _T | None) -> _T:
    if part is None:
        raise RuntimeError("the LocalRuntime is not started (use start() or `with LocalRuntime(...) as rt`)")
    return part


class LocalRuntime:
    """The orchestrator stack deployed into moto, with in-process handlers and the HealthImaging emulator.

    Parameters:
        time_scale: real seconds per virtual second (0.01: 100x faster than real time).
        copy_duration: how long the emulator takes for one ``CopyImageSet`` (virtual seconds).
        config_overrides: merged into the ``hicopy`` synth context (e.g. ``{"polling": {"maxWaitSeconds": 600}}``).
        cdk_out: use this already-synthesized cloud assembly instead of synthesizing the app.
        stack_name: the stack to deploy when ``cdk_out`` holds several.
        datastore_id: the data store the stack is configured for (created in the emulator at start-up).
        env_overrides: extra handler environment, by construct id (``"Submit"``), logical id, or ``"*"``.
        progress: called with a ``Progress`` for everything that happens (demo output).
        emulator_options: extra keyword arguments for ``HealthImagingEmulator``.
        with_emulator: start the HealthImaging emulator (``False``: ``medical-imaging`` calls are not intercepted).
    """

    def __init__(
        self,
        *,
        time_scale: float = 0.01,
        copy_duration: float = 30.0,
        config_overrides: Mapping[str, Any] | None = None,
        cdk_out: str | Path | None = None,
        stack_name: str | None = None,
        datastore_id: str = DEFAULT_DATASTORE_ID,
        env_overrides: Mapping[str, Mapping[str, str]] | None = None,
        progress: Callable[[Progress], None] | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        with_emulator: bool = True,
    ) -> None:
        self.time_scale = time_scale
        self.copy_duration = copy_duration
        self.config = _merge(LOCAL_CONFIG, config_overrides or {})
        self.datastore_id = datastore_id
        if datastore_id not in self.config.get("datastoreIds", []):
            self.config["datastoreIds"] = [datastore_id, *self.config.get("datastoreIds", [])]
        self._cdk_out = Path(cdk_out) if cdk_out is not None else None
        self._stack_name = stack_name
        self.env_overrides = {k: dict(v) for k, v in (env_overrides or {}).items()}
        self.progress = progress
        self.emulator_options = dict(emulator_options or {})
        self.with_emulator = with_emulator
        self.clock = ScaledClock(time_scale)
        self.timings: dict[str, float] = {}
        self.retry_sleeps: list[RetrySleep] = []
        self._started = False
        self._progress = ProgressReporter(progress)
        # The parts, made by start() (see ``_start`` for how they are wired).
        self._mock: Any = None  # moto's mock_aws
        self._saved_env: dict[str, str | None] = {}
        self._session: Any = None  # boto3 Session
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._runner: LambdaRunner | None = None
        self._logging: LoggingSnapshot | None = None
        self._patches: MotoPatches | None = None
        self._router: EventRouter | None = None
        self._emulator: HealthImagingEmulator | None = None
        self._deployment: Deployment | None = None
        self._poller: SqsPoller | None = None
        self._executions: ExecutionTracker | None = None
        self._status_events: ExecutionStatusEvents | None = None
        self._driver: Driver | None = None

    # ============================================================================================ lifecycle

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        """Synthesize (cached), start moto and the emulator, deploy the stack. Idempotent."""
        if self._started:
            return self
        _claim(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        t0 = time.monotonic()
        assembly = load_assembly(self.config, self._cdk_out, self._stack_name)
        self.timings["synth"] = time.monotonic() - t0
        t1 = time.monotonic()
        for key, value in AWS_ENV.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        from moto import mock_aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": True}})
        self._mock.start()
        self._started = True
        logging.getLogger(_ASL_LOGGER).addFilter(_not_a_workflow_outcome)
        progress = self._progress
        progress.t0 = t0  # progress times count from the start
        async_invoker = AsyncInvoker(
            account=ACCOUNT, region=REGION, real_seconds=self.clock.real_seconds, clients=self.client
        )
        router = self._router = EventRouter(account=ACCOUNT, region=REGION, async_invoker=async_invoker)
        router.on_publish = progress.published
        runner = self._runner = LambdaRunner(
            region=REGION,
            account=ACCOUNT,
            clock=self.clock,
            env_overrides=self.env_overrides,
            forced_env=FORCED_HANDLER_ENV,
            on_invocation=progress.invocation,
        )
        runner.install_streams()
        self._logging = LoggingSnapshot()
        self._patches = MotoPatches(
            runner=runner,
            router=router,
            clock=self.clock,
            retry_sleeps=self.retry_sleeps,
            on_visibility=self._visibility_requested,
        )
        self._patches.apply()
        if self.with_emulator:
            self._emulator = self._start_emulator()
        import boto3

        self._session = boto3.session.Session(region_name=REGION)
        deployment = self._deployment = deploy(
            assembly, clients=self.client, runner=runner, async_invoker=async_invoker
        )
        self.timings.update(deployment.timings)
        poller = self._poller = SqsPoller(
            sqs=self.client("sqs"),
            lambda_client=self.client("lambda"),
            region=REGION,
            real_seconds=self.clock.real_seconds,
            on_batch=progress.batch,
            on_receive=progress.receive,
        )
        attach_event_source_mappings(self.client("lambda"), poller)
        self.timings["deploy"] = time.monotonic() - t1
        progress.custom_bus = deployment.event_bus_name
        progress.construct_of = self._construct_name
        self._executions = ExecutionTracker(
            clients=self.client,
            account=ACCOUNT,
            region=REGION,
            state_machine_arns=deployment.state_machine_arns,
            progress=progress,
        )
        self._status_events = ExecutionStatusEvents(
            clients=self.client, account=ACCOUNT, region=REGION, state_machine_arns=deployment.state_machine_arns
        )
        progress.sync = self._executions.observe
        self._driver = Driver(
            poller=poller,
            async_invoker=async_invoker,
            emulator=self._emulator,
            executions=self._executions,
            invocation_count=lambda: len(runner.invocations),
            progress=progress,
            status_events=self._status_events,
        )
        if self._emulator is not None:
            self._emulator.create_datastore("local", datastore_id=self.datastore_id)
            for bucket in (IMPORT_INPUT_BUCKET, IMPORT_OUTPUT_BUCKET):
                self.client("s3").create_bucket(Bucket=bucket)
        self.timings["start"] = time.monotonic() - t0

    def _start_emulator(self) -> HealthImagingEmulator:
        """The emulator on this runtime's clock, installed for every ``medical-imaging`` client; its events go to
        the default bus with the service's own source."""
        from hicopy.contract import HEALTHIMAGING_SOURCE
        from offline.healthimaging import HealthImagingEmulator

        emulator = HealthImagingEmulator(
            clock=self.clock,
            account=ACCOUNT,
            region=REGION,
            copy_duration=self.copy_duration,
            event_sink=default_bus_sink(self.client, HEALTHIMAGING_SOURCE),
            **self.emulator_options,
        )
        emulator.install()
        return emulator

    def stop(self) -> None:
        """Stop running executions, the emulator, the handlers, the patches and moto (in that order). Idempotent."""
        try:
            if self._started and self._executions is not None:
                self._executions.stop_all()
        finally:
            if self._emulator is not None:
                with contextlib.suppress(Exception):
                    self._emulator.uninstall()  # and stops its ticker
            if self._runner is not None:
                with self._runner.lock:
                    self._runner.close()
            if self._logging is not None:
                self._logging.restore(self._runner.packages if self._runner is not None else None)
                self._logging = None
            if self._patches is not None:
                self._patches.undo()
                self._patches = None
            if self._mock is not None:
                with contextlib.suppress(Exception):
                    self._mock.stop()
                self._mock = None
            logging.getLogger(_ASL_LOGGER).removeFilter(_not_a_workflow_outcome)
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env.clear()
            self._clients.clear()
            self._session = None
            self._started = False
            _release(self)

    def client(self, service: str) -> Any:
        """A boto3 client talking to this runtime (moto + the HealthImaging emulator)."""
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(region_name=REGION)
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(service, region_name=REGION)
            return self._clients[service]

    def _visibility_requested(self, receipt_handle: str, seconds: int) -> None:
        if self._poller is not None:
            self._poller.requested_visibility(receipt_handle, seconds)

    @property
    def status_change_events(self) -> list[dict[str, Any]]:
        """The details of the ``Step Functions Execution Status Change`` events the runtime put (one per ended
        execution)."""
        return list(self._status_events.emitted) if self._status_events is not None else []

    def _construct_name(self, function_name: str) -> str:
        spec = self.runner.functions.get(function_name)
        return spec.construct_id if spec is not None else function_name

    # ============================================================================================ the parts

    @property
    def runner(self) -> LambdaRunner:
        """The in-process Lambda runner (``functions``, ``invocations``, ``lock``)."""
        return _started(self._runner)

    @property
    def deployment(self) -> Deployment:
        """Where the deployed stack's resources are."""
        return _started(self._deployment)

    @property
    def emulator(self) -> HealthImagingEmulator:
        """The HealthImaging emulator every ``medical-imaging`` client of this process talks to."""
        if self._emulator is None:
            raise RuntimeError("this runtime has no HealthImaging emulator (with_emulator=False, or not started)")
        return self._emulator

    # ============================================================================================ HealthImaging

    def seed_image_set(self, **options: Any) -> SeededImageSet:
        """Seed an image set in the stack's data store (``datastore_id``); ``options`` as for
        ``HealthImagingEmulator.seed_image_set`` (``series=``, ``instances_per_series=``, ...)."""
        return self.emulator.seed_image_set(self.datastore_id, **options)

    def simulate_import(
        self, *, input_s3_uri: str | None = None, output_s3_uri: str | None = None, **options: Any
    ) -> str:
        """Run an emulated DICOM import into the stack's data store, from and to the runtime's import buckets
        (the output bucket is the one the stack may read): image sets, a manifest in (moto) S3 and ``Import Job
        Completed``. ``options`` as for ``HealthImagingEmulator.simulate_import``. Returns the import job id."""
        options.setdefault("image_sets", [])
        return self.emulator.simulate_import(
            self.datastore_id,
            input_s3_uri=input_s3_uri or f"s3://{IMPORT_INPUT_BUCKET}/dicom/",
            output_s3_uri=output_s3_uri or f"s3://{IMPORT_OUTPUT_BUCKET}/output/",
            **options,
        )

    # ============================================================================================ triggers

    def send_job(self, job: Mapping[str, Any] | str, attributes: Mapping[str, str] | None = None) -> str:
        """Send a copy job to the job queue (a dict is JSON-encoded; a string is sent as is). Returns the message id."""
        body = job if isinstance(job, str) else json.dumps(job)
        kwargs: dict[str, Any] = {"QueueUrl": self.deployment.job_queue_url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": str(v)} for k, v in attributes.items()
            }
        message_id: str = self.client("sqs").send_message(**kwargs)["MessageId"]
        self._progress.emit(
            "sqs.send", f"job sent to the job queue ({message_id[:8]})", message_id=message_id, body=body
        )
        return message_id

    def put_event(
        self,
        detail_type: str,
        detail: Mapping[str, Any] | str,
        *,
        source: str | None = None,
        bus: str = "custom",
        resources: list[str] | None = None,
    ) -> str:
        """Put an event on the custom bus (``bus="custom"``), the default bus (``"default"``) or a named bus. The
        ``source`` defaults to the one the stack's rule for ``detail_type`` names. Returns the event id."""
        deployment = self.deployment
        bus_name = deployment.event_bus_name if bus == "custom" else bus
        entry: dict[str, Any] = {
            "Source": source if source is not None else deployment.source_for(detail_type),
            "DetailType": detail_type,
            "Detail": detail if isinstance(detail, str) else json.dumps(detail),
            "EventBusName": bus_name,
            "Resources": list(resources or []),
        }
        result = self.client("events").put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents failed: {result['Entries']}")
        event_id: str = result["Entries"][0]["EventId"]
        self._progress.emit("event.put", f"{detail_type} put on {bus_name}", event_id=event_id)
        return event_id

    # ============================================================================================ driving

    def pump(self) -> int:
        """One round of the event loop (see ``offline.runtime.drive.Driver.pump``). Returns work done."""
        return _started(self._driver).pump()

    def busy_reasons(self) -> list[str]:
        """What is still moving (empty when idle)."""
        return _started(self._driver).busy_reasons()

    def run_until_idle(self, timeout: float = 60.0, *, settle: float = 0.05) -> IdleReport:
        """Drive the pipeline until nothing moves for ``settle`` seconds; ``IdleTimeout`` after ``timeout``."""
        return _started(self._driver).run_until_idle(timeout, settle=settle)

    # ============================================================================================ results

    def executions(self, status: str | None = None) -> list[ExecutionInfo]:
        """Every execution of the stack's state machine(s), oldest first, with the states each went through."""
        return _started(self._executions).executions(status)

    def execution_history(self, execution_arn: str) -> list[dict[str, Any]]:
        return _started(self._executions).history(execution_arn)

    def state_attempts(self, execution_arn: str, state: str) -> list[Attempt]:
        """Each attempt of a Task state, in order (see ``offline.runtime.inspection.attempts_of``)."""
        return attempts_of(self.execution_history(execution_arn), state)

    def published_events(self, bus: str | None = None) -> list[dict[str, Any]]:
        """Every event accepted by ``PutEvents`` (AWS envelope shape), optionally only those of one bus."""
        return events_on(list(self._router.published) if self._router else [], bus)

    def completion_events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Events the orchestrator published on its custom bus, oldest first: the terminal ``Copy Job
        Succeeded`` / ``Copy Job Failed`` / ``Copy Job Rejected`` and the planner's ``Import Job Planned`` /
        ``Import Job Failures``. (``published_events(bus)`` also has what clients put, e.g. ``Copy Requested``.)"""
        return orchestrator_events(
            list(_started(self._router).published),
            bus=self.deployment.event_bus_name,
            source=self.deployment.event_source,
            detail_type=detail_type,
        )

    @property
    def invocations(self) -> list[Invocation]:
        """Every handler call, oldest first (event, result, error, logs, cold start)."""
        return list(self._runner.invocations) if self._runner is not None else []

    def invocations_of(self, construct_id: str) -> list[Invocation]:
        return [i for i in self.invocations if construct_id in (i.construct_id, i.function)]

    def sqs_batches(self) -> list[BatchResult]:
        """Every batch the SQS poller handed to a function: ``received``, ``failed`` message ids, ``function_error``."""
        return list(self._poller.batches) if self._poller is not None else []

    def queue_messages(self, queue: str) -> list[dict[str, Any]]:
        """Peek at every message of a queue (construct id, URL or name) without consuming it."""
        if queue.startswith("http"):
            url = queue
        else:
            try:
                url = self.deployment.physical_id(queue)
            except KeyError:
                url = self.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
        return peek_queue(url, account=ACCOUNT, region=REGION)

    def dlq_messages(self) -> list[dict[str, Any]]:
        """Messages in the job dead-letter queue (redriven after ``maxReceiveCount``, or rejected jobs)."""
        return self.queue_messages(self.deployment.dlq_url)


# ================================================================================================ one per process

_ACTIVE: LocalRuntime | None = None
_ACTIVE_LOCK = threading.Lock()


def _claim(rt: LocalRuntime) -> None:
    global _ACTIVE  # noqa: PLW0603 - moto's mock is process-global, so is the active runtime
    with _ACTIVE_LOCK:
        if _ACTIVE is not None and _ACTIVE is not rt:
            raise RuntimeError("another LocalRuntime is running in this process; stop it first")
        _ACTIVE = rt


def _release(rt: LocalRuntime) -> None:
    global _ACTIVE  # noqa: PLW0603
    with _ACTIVE_LOCK:
        if _ACTIVE is rt:
            _ACTIVE = None
