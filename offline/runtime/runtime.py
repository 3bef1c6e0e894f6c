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

Usage::

    with LocalRuntime(time_scale=0.01) as rt:
        src = rt.seed_image_set(series=2, instances_per_series=3)
        rt.send_job({"datastoreId": rt.datastore_id, "source": {"imageSetId": src.image_set_id}})
        rt.run_until_idle(timeout=30)
        print(rt.completion_events())
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra import ensure_functions_importable
from offline.clock import ScaledClock
from offline.runtime.assembly import CloudAssembly
from offline.runtime.cfn import apply_deferred, prepare_template, resolve
from offline.runtime.eventbridge import AsyncInvoker, EventRouter, PublishedEvent
from offline.runtime.lambdas import FunctionSpec, Invocation, LambdaRunner, LoggingSnapshot
from offline.runtime.patches import MotoPatches
from offline.runtime.sqs_poller import BatchResult, SqsPoller

if TYPE_CHECKING:  # imported at start-up: the emulator imports hicopy, which start() makes importable
    from offline.healthimaging import HealthImagingEmulator, SeededImageSet

LOG = logging.getLogger(__name__)

ACCOUNT = "123456789012"
REGION = "us-east-1"
DEFAULT_DATASTORE_ID = "localdatastore000000000000000001"
IMPORT_INPUT_BUCKET = "hicopy-local-import-input"
IMPORT_OUTPUT_BUCKET = "hicopy-local-import-output"
BOOTSTRAP_QUALIFIER = "hnb659fds"
SERVICE_EVENT_SOURCE = "aws.medical-imaging"
DEFAULT_CLIENT_SOURCE = "local.client"
DEFAULT_EVENT_SOURCE = "hicopy.orchestrator"  # infra.config's default eventSource

# The synth context of the local runtime (merged under ``config_overrides``): one fixed data store, the import
# output bucket and the consolidate policy (with force: an import's non-primary image sets conflict with their
# primary by definition), so that every trigger can be exercised.
LOCAL_CONFIG: dict[str, Any] = {
    "datastoreIds": [DEFAULT_DATASTORE_ID],
    "importOutputBuckets": [IMPORT_OUTPUT_BUCKET],
    "postImportPolicy": "consolidate",
    "consolidateForce": True,
}

# Environment forced on every handler: no X-Ray daemon here.
FORCED_HANDLER_ENV = {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_XRAY_SDK_ENABLED": "false"}


class IdleTimeout(TimeoutError):
    """``run_until_idle`` ran out of time; the message says what was still moving."""


@dataclass
class Progress:
    """One progress notification (for ``LocalRuntime(progress=callback)``)."""

    kind: str  # sqs.send | event.put | sqs.batch | lambda | execution.start | execution.state | execution.end |
    # event.published | service.event
    message: str
    at: float  # seconds since the runtime started (real time)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutionInfo:
    """``DescribeExecution`` plus the states the execution went through."""

    arn: str
    name: str
    status: str
    input: Any
    output: Any
    start: Any
    stop: Any
    error: str | None
    cause: str | None
    states: list[str] = field(default_factory=list)

    @property
    def job_id(self) -> str | None:
        for candidate in (self.input, self.output):
            if isinstance(candidate, dict):
                job = candidate.get("job") if isinstance(candidate.get("job"), dict) else candidate
                value = job.get("jobId") if isinstance(job, dict) else None
                if isinstance(value, str):
                    return value
        return None

    @property
    def current_state(self) -> str | None:
        return self.states[-1] if self.states else None


@dataclass(frozen=True)
class RetrySleep:
    """One Step Functions ``Retry`` back-off, as the interpreter computed it (after MaxDelay and jitter)."""

    at: float  # wall-clock time the sleep started (time.time())
    seconds: float  # virtual seconds requested; the real sleep is seconds * time_scale
    thread: str  # the execution's worker thread


@dataclass
class IdleReport:
    seconds: float
    loops: int
    executions: int
    invocations: int


@dataclass
class _ExecutionView:
    arn: str
    status: str = "RUNNING"
    states: list[str] = field(default_factory=list)
    seen_events: int = 0


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


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
        self.skipped_resources: dict[str, str] = {}
        self.template_fixups: list[str] = []
        self.retry_sleeps: list[RetrySleep] = []
        self.outputs: dict[str, str] = {}
        self.physical_ids: dict[str, str] = {}
        self._started = False
        self._t0 = time.monotonic()
        self._mock: Any = None
        self._patches: MotoPatches | None = None
        self._logging: LoggingSnapshot | None = None
        self._emulator: HealthImagingEmulator | None = None
        self._saved_env: dict[str, str | None] = {}
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._executions: dict[str, _ExecutionView] = {}
        self._state_machine_arns: list[str] = []
        self._construct_of: dict[str, str] = {}
        self._lock = threading.RLock()
        self.assembly: CloudAssembly | None = None
        self.runner: LambdaRunner | None = None
        self.poller: SqsPoller | None = None
        self.router: EventRouter | None = None
        self.async_invoker: AsyncInvoker | None = None

    # ============================================================================================ lifecycle

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
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
        self._t0 = t0
        ensure_functions_importable()  # the emulator and the clock share hicopy's code, whatever PYTHONPATH says
        self.assembly = self._load_assembly()
        self.timings["synth"] = time.monotonic() - t0
        t1 = time.monotonic()
        for key, value in {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
        }.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        from moto import mock_aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": True}})
        self._mock.start()
        self._started = True
        self.async_invoker = AsyncInvoker(
            account=ACCOUNT, region=REGION, real_seconds=self.real_seconds, send_failure=self._send_failure
        )
        self.router = EventRouter(account=ACCOUNT, region=REGION, async_invoker=self.async_invoker)
        self.router.on_publish = self._on_publish
        self.runner = LambdaRunner(
            region=REGION,
            account=ACCOUNT,
            clock=self.clock,
            env_overrides=self.env_overrides,
            forced_env=FORCED_HANDLER_ENV,
            on_invocation=self._on_invocation,
        )
        self.runner.install_streams()
        self._logging = LoggingSnapshot()
        self._patches = MotoPatches(self)
        self._patches.apply()
        if self.with_emulator:
            self._start_emulator()
        import boto3

        self._session = boto3.session.Session(region_name=REGION)
        self._deploy()
        self.timings["deploy"] = time.monotonic() - t1
        if self._emulator is not None:
            self._emulator.create_datastore("local", datastore_id=self.datastore_id)
            for bucket in (IMPORT_INPUT_BUCKET, IMPORT_OUTPUT_BUCKET):
                self.client("s3").create_bucket(Bucket=bucket)
        self.timings["start"] = time.monotonic() - t0

    def stop(self) -> None:
        """Stop running executions, the emulator, the patches and moto (in that order). Idempotent."""
        try:
            if self._started:
                self._stop_executions()
        finally:
            if self._emulator is not None:
                with contextlib.suppress(Exception):
                    self._emulator.uninstall()  # and stops its ticker
            if self.runner is not None:
                with self.runner.lock:
                    self.runner.close()
            if self._logging is not None:
                self._logging.restore(self.runner.packages if self.runner is not None else None)
                self._logging = None
            if self._patches is not None:
                self._patches.undo()
                self._patches = None
            if self._mock is not None:
                with contextlib.suppress(Exception):
                    self._mock.stop()
                self._mock = None
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

    def _stop_executions(self, timeout: float = 10.0) -> None:
        sfn = self.client("stepfunctions")
        for arn in self._state_machine_arns:
            for ex in self._list_executions(arn, "RUNNING"):
                with contextlib.suppress(Exception):
                    sfn.stop_execution(executionArn=ex["executionArn"], error="LocalRuntimeStopped")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._running_count() > 0:
            time.sleep(0.02)
        time.sleep(0.05)  # let stopped workers unwind out of their last task

    # ============================================================================================ set-up

    def _load_assembly(self) -> CloudAssembly:
        if self._cdk_out is not None:
            return CloudAssembly.load(self._cdk_out, self._stack_name)
        from offline.runtime.synth import synthesize

        directory = synthesize(context={"hicopy": self.config})
        return CloudAssembly.load(directory, self._stack_name)

    def _start_emulator(self) -> None:
        from offline.healthimaging import HealthImagingEmulator

        self._emulator = HealthImagingEmulator(
            clock=self.clock,
            account=ACCOUNT,
            region=REGION,
            copy_duration=self.copy_duration,
            event_sink=self._service_event,
            **self.emulator_options,
        )
        self._emulator.install()

    def _deploy(self) -> None:
        assert self.assembly is not None and self.runner is not None
        assembly = self.assembly
        s3 = self.client("s3")
        bucket = f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{ACCOUNT}-{REGION}"
        s3.create_bucket(Bucket=bucket)
        for key, asset in assembly.assets.items():
            s3.put_object(Bucket=bucket, Key=key, Body=_zip_dir(asset.path))
        self.client("ssm").put_parameter(
            Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value="30", Type="String", Overwrite=True
        )
        cfn = self.client("cloudformation")
        t_cfn = time.monotonic()
        prepared = prepare_template(assembly.template, stack_name=assembly.stack_name, account=ACCOUNT, region=REGION)
        self.template_fixups = list(prepared.notes)
        self.skipped_resources = dict(prepared.dropped)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfn.create_stack(
                StackName=assembly.stack_name,
                TemplateBody=json.dumps(prepared.template),
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        self.timings["create_stack"] = time.monotonic() - t_cfn
        stack = cfn.describe_stacks(StackName=assembly.stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"stack {assembly.stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason')}")
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        paginator = cfn.get_paginator("list_stack_resources")
        for page in paginator.paginate(StackName=assembly.stack_name):
            for summary in page["StackResourceSummaries"]:
                self.physical_ids[summary["LogicalResourceId"]] = summary.get("PhysicalResourceId", "")
        paths = assembly.construct_paths()
        self._construct_of = {lid: _construct_id(path) for lid, path in paths.items()}
        problems = apply_deferred(
            prepared, clients=self.client, stack_name=assembly.stack_name, account=ACCOUNT, region=REGION
        )
        for problem in problems:
            LOG.warning("not created locally: %s", problem)
            self.template_fixups.append(f"NOT CREATED: {problem}")
        t_reg = time.monotonic()
        self._register_state_machines()
        self.timings["register_state_machines"] = time.monotonic() - t_reg
        self._register_functions()
        self._replace_event_source_mappings()

    def _register_state_machines(self) -> None:
        """moto's CFN puts state machines in the non-executing backend: create them again in the executing one."""
        from moto.stepfunctions.models import stepfunctions_backends

        assert self.assembly is not None
        sfn = self.client("stepfunctions")
        static = stepfunctions_backends[ACCOUNT][REGION]
        for lid, res in self.assembly.resources_of_type("AWS::StepFunctions::StateMachine").items():
            arn = self.physical_ids[lid]
            sm = static.describe_state_machine(arn)
            kwargs: dict[str, Any] = {"name": sm.name, "definition": sm.definition, "roleArn": sm.roleArn}
            sm_type = res.get("Properties", {}).get("StateMachineType")
            if sm_type:
                kwargs["type"] = sm_type
            created = sfn.create_state_machine(**kwargs)["stateMachineArn"]
            if created != arn:
                raise RuntimeError(f"re-registered state machine has ARN {created}, expected {arn}")
            self._state_machine_arns.append(arn)

    def _register_functions(self) -> None:
        assert self.assembly is not None and self.runner is not None and self.async_invoker is not None
        lam = self.client("lambda")
        for lid, res in self.assembly.resources_of_type("AWS::Lambda::Function").items():
            name = self.physical_ids.get(lid)
            code_dir = self.assembly.code_dir_of(lid)
            if not name or code_dir is None:
                continue
            cfg = lam.get_function_configuration(FunctionName=name)
            dlq = (res.get("Properties", {}).get("DeadLetterConfig") or {}).get("TargetArn")
            if dlq is not None:  # moto drops a function's DeadLetterConfig; the async invoker needs it
                target = resolve(dlq, stack_name=self.assembly.stack_name, account=ACCOUNT, region=REGION)
                self.async_invoker.dead_letter_targets[cfg["FunctionArn"]] = str(target)
            self.runner.register(
                FunctionSpec(
                    logical_id=lid,
                    construct_id=self._construct_of.get(lid, lid),
                    function_name=name,
                    function_arn=cfg["FunctionArn"],
                    handler=cfg["Handler"],
                    code_dir=code_dir,
                    timeout=int(cfg.get("Timeout") or 3),
                    memory_size=int(cfg.get("MemorySize") or 128),
                )
            )

    def _replace_event_source_mappings(self) -> None:
        lam = self.client("lambda")
        self.poller = SqsPoller(
            sqs=self.client("sqs"),
            lambda_client=lam,
            region=REGION,
            real_seconds=self.real_seconds,
            on_batch=self._on_batch,
        )
        for esm in lam.list_event_source_mappings()["EventSourceMappings"]:
            if ":sqs:" not in esm["EventSourceArn"]:
                continue
            enabled = esm.get("State", "Enabled") == "Enabled"
            # moto would invoke synchronously inside SendMessage, one record at a time: switch it off (a delete
            # alone does not detach it in moto 5.2.5) and poll with Lambda's semantics instead.
            lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=False)
            if enabled:
                self.poller.add_mapping(esm)

    # ============================================================================================ hooks
    # Called by the moto patches (``offline.runtime.patches.RuntimeHooks``); not meant for users.

    def invoke_lambda(self, fn: Any, event: Any) -> tuple[str, bool, str]:
        assert self.runner is not None
        return self.runner.invoke(fn.function_name, fn.function_arn, event)

    def route_event(
        self, rule: Any, event: dict[str, Any], transform_input: bool, original: Callable[..., Any]
    ) -> None:
        assert self.router is not None
        self.router.route(rule, event, transform_input, original)

    def record_events(self, backend: Any, events: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
        if self.router is not None:
            self.router.record(backend, events, entries)

    def virtual_now(self) -> float:
        return self.clock.now()

    def record_retry_sleep(self, seconds: float) -> None:
        self.retry_sleeps.append(
            RetrySleep(at=time.time(), seconds=float(seconds), thread=threading.current_thread().name)
        )

    def real_seconds(self, virtual_seconds: float) -> float:
        return max(0.0, virtual_seconds * self.time_scale)

    def _service_event(self, detail_type: str, detail: Mapping[str, Any], resources: list[str] | None = None) -> None:
        """The emulator's event sink: HealthImaging events go to the default bus."""
        entry: dict[str, Any] = {
            "Source": SERVICE_EVENT_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
            "Resources": list(resources or []),
        }
        result = self.client("events").put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            LOG.warning("could not put %s on the default bus: %s", detail_type, result["Entries"])

    def _send_failure(self, target: str, body: Any, attributes: dict[str, str]) -> None:
        """Deliver a failed asynchronous invocation to an SQS queue or SNS topic (DLQ or on-failure destination)."""
        if ":sqs:" in target:
            name = target.rsplit(":", 1)[-1]
            url = self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
            self.client("sqs").send_message(
                QueueUrl=url,
                MessageBody=body if isinstance(body, str) else json.dumps(body),
                MessageAttributes={k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
            )
        elif ":sns:" in target:
            self.client("sns").publish(
                TopicArn=target,
                Message=body if isinstance(body, str) else json.dumps(body),
                MessageAttributes={k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
            )

    # ============================================================================================ progress

    def _emit(self, kind: str, message: str, **data: Any) -> None:
        if self.progress is None:
            return
        try:
            self.progress(Progress(kind=kind, message=message, at=time.monotonic() - self._t0, data=data))
        except Exception:  # pragma: no cover - progress output must never break the pipeline
            LOG.exception("progress callback failed")

    def _on_invocation(self, inv: Invocation) -> None:
        outcome = "ok" if inv.ok else f"{inv.error_type}: {inv.error_message}"
        self._emit("lambda", f"{inv.construct_id} -> {outcome}", invocation=inv)

    def _on_batch(self, batch: BatchResult) -> None:
        fn = batch.mapping.function_arn.rsplit(":", 1)[-1]
        self._emit(
            "sqs.batch",
            f"{batch.received} message(s) -> {self._construct_name(fn)}, {len(batch.failed)} failed",
            batch=batch,
        )

    def _on_publish(self, published: PublishedEvent) -> None:
        kind = "event.published" if published.bus == self.event_bus_name else "service.event"
        self._emit(kind, f"{published.bus}: {published.event['detail-type']}", event=published.event, bus=published.bus)

    def _construct_name(self, function_name: str) -> str:
        if self.runner is not None and function_name in self.runner.functions:
            return self.runner.functions[function_name].construct_id
        return function_name

    # ============================================================================================ resources

    def client(self, service: str) -> Any:
        """A boto3 client talking to this runtime (moto + the HealthImaging emulator)."""
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(region_name=REGION)
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(service, region_name=REGION)
            return self._clients[service]

    def logical_id(self, construct_id: str) -> str:
        assert self.assembly is not None
        return self.assembly.logical_id(construct_id)

    def physical_id(self, construct_id: str) -> str:
        """Physical id (queue URL, function name, state machine ARN, ...) of a construct of the stack."""
        return self.physical_ids[self.logical_id(construct_id)]

    def queue_url(self, construct_id: str) -> str:
        return self.physical_id(construct_id)

    @property
    def job_queue_url(self) -> str:
        return self.outputs.get("JobQueueUrl") or self.queue_url("JobQueue")

    @property
    def dlq_url(self) -> str:
        return self.outputs.get("JobDeadLetterQueueUrl") or self.queue_url("JobDeadLetterQueue")

    @property
    def event_bus_name(self) -> str:
        return self.outputs.get("EventBusName") or self.physical_id("CopyEventBus")

    @property
    def state_machine_arn(self) -> str:
        return self.outputs.get("StateMachineArn") or self._state_machine_arns[0]

    @property
    def invocations(self) -> list[Invocation]:
        return list(self.runner.invocations) if self.runner is not None else []

    def invocations_of(self, construct_id: str) -> list[Invocation]:
        return [i for i in self.invocations if construct_id in (i.construct_id, i.function)]

    # ============================================================================================ emulator

    @property
    def emulator(self) -> HealthImagingEmulator:
        """The HealthImaging emulator every ``medical-imaging`` client of this process talks to."""
        if self._emulator is None:
            raise RuntimeError("this runtime has no HealthImaging emulator (with_emulator=False)")
        return self._emulator

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
        kwargs: dict[str, Any] = {"QueueUrl": self.job_queue_url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": str(v)} for k, v in attributes.items()
            }
        message_id: str = self.client("sqs").send_message(**kwargs)["MessageId"]
        self._emit("sqs.send", f"job sent to the job queue ({message_id[:8]})", message_id=message_id, body=body)
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
        """Put an event on the custom bus (``bus="custom"``), the default bus (``"default"``) or a named bus."""
        bus_name = self.event_bus_name if bus == "custom" else bus
        if source is None:
            source = self._source_for(detail_type, bus_name)
        entry: dict[str, Any] = {
            "Source": source,
            "DetailType": detail_type,
            "Detail": detail if isinstance(detail, str) else json.dumps(detail),
            "EventBusName": bus_name,
            "Resources": list(resources or []),
        }
        result = self.client("events").put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents failed: {result['Entries']}")
        event_id: str = result["Entries"][0]["EventId"]
        self._emit("event.put", f"{detail_type} put on {bus_name}", event_id=event_id)
        return event_id

    def _source_for(self, detail_type: str, bus_name: str) -> str:
        """A source the bus's rules accept for this detail-type (the rule's own ``source``, if it names one)."""
        assert self.assembly is not None
        for res in self.assembly.resources_of_type("AWS::Events::Rule").values():
            pattern = res.get("Properties", {}).get("EventPattern") or {}
            if detail_type in (pattern.get("detail-type") or []):
                sources = pattern.get("source") or []
                if sources and isinstance(sources[0], str):
                    return str(sources[0])
        return DEFAULT_CLIENT_SOURCE

    # ============================================================================================ driving

    def pump(self) -> int:
        """One round of the event loop: SQS mappings, due async invocations, emulator time. Returns work done."""
        moved = 0
        if self.poller is not None:
            moved += self.poller.poll_once()
        if self.async_invoker is not None:
            moved += self.async_invoker.run_due()
        if self._emulator is not None:
            moved += self._emulator.tick()
        return moved

    def busy_reasons(self) -> list[str]:
        """What is still moving (empty when idle)."""
        reasons = []
        running = self._running_count()
        if running:
            reasons.append(f"{running} execution(s) running")
        if self.async_invoker is not None and self.async_invoker.pending:
            reasons.append(f"{self.async_invoker.pending} async invocation(s) pending")
        if self.poller is not None:
            backlog = self.poller.backlog() + self.poller.in_flight_releases()
            if backlog:
                reasons.append(f"{backlog} message(s) in the job queue(s)")
        if self._emulator is not None:
            pending = self._emulator.pending()
            if pending:
                reasons.append(f"{pending} emulator action(s) scheduled")
        return reasons

    def run_until_idle(self, timeout: float = 60.0, *, settle: float = 0.05) -> IdleReport:
        """Drive the pipeline until nothing moves: no queued messages, no running executions, no pending async
        invocations or emulator work, for ``settle`` seconds. Raises ``IdleTimeout`` after ``timeout``.

        The loop checks moto's in-memory state directly (cheap) and backs off from 5 to 50 ms while nothing moves,
        so it does not compete with the handlers for the GIL.
        """
        start = time.monotonic()
        deadline = start + timeout
        quiet_since: float | None = None
        loops = 0
        interval = 0.005
        last_observed = 0.0
        inv_before = len(self.invocations)
        while True:
            loops += 1
            moved = self.pump()
            now = time.monotonic()
            if self.progress is not None and (moved or now - last_observed >= 0.05):
                self._observe_executions()
                last_observed = now
            if moved:
                quiet_since = None
                interval = 0.005
                continue
            if self.busy_reasons():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                break
            if now > deadline:
                raise IdleTimeout(f"still busy after {timeout:.1f}s: {'; '.join(self.busy_reasons()) or 'settling'}")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.05)
        self._observe_executions()
        return IdleReport(
            seconds=time.monotonic() - start,
            loops=loops,
            executions=len(self._executions),
            invocations=len(self.invocations) - inv_before,
        )

    # ============================================================================================ executions

    def _list_executions(self, sm_arn: str, status: str | None = None) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        kwargs: dict[str, Any] = {"stateMachineArn": sm_arn}
        if status:
            kwargs["statusFilter"] = status
        out: list[dict[str, Any]] = []
        for page in sfn.get_paginator("list_executions").paginate(**kwargs):
            out.extend(page["executions"])
        return out

    def _running_count(self) -> int:
        """Executions still running (read from moto's executing backend: no API round trip)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        count = 0
        for arn in self._state_machine_arns:
            for execution in list(backend.describe_state_machine(arn).executions):
                status = getattr(execution, "exec_status", None)
                if status is None or getattr(status, "value", status) == "RUNNING":
                    count += 1
        return count

    def _observe_executions(self) -> None:
        """Follow every execution's state changes (for ``progress`` and ``ExecutionInfo.states``)."""
        for sm_arn in self._state_machine_arns:
            for ex in self._list_executions(sm_arn):
                arn = ex["executionArn"]
                view = self._executions.get(arn)
                if view is None:
                    view = self._executions[arn] = _ExecutionView(arn)
                    self._emit("execution.start", f"execution {ex['name'][:8]} started", arn=arn, name=ex["name"])
                elif view.status != "RUNNING":
                    continue
                self._update_view(view, ex["status"])

    def _update_view(self, view: _ExecutionView, status: str) -> None:
        events = self.execution_history(view.arn)
        for event in events[view.seen_events :]:
            if event["type"].endswith("StateEntered"):
                state = event["stateEnteredEventDetails"]["name"]
                view.states.append(state)
                self._emit("execution.state", state, arn=view.arn, state=state)
        view.seen_events = len(events)
        if status != "RUNNING":
            view.status = status
            self._emit("execution.end", status, arn=view.arn, status=status)

    def executions(self, status: str | None = None) -> list[ExecutionInfo]:
        """Every execution of the stack's state machine(s), oldest first, with the states each went through."""
        sfn = self.client("stepfunctions")
        self._observe_executions()
        out: list[ExecutionInfo] = []
        for sm_arn in self._state_machine_arns:
            for ex in self._list_executions(sm_arn, status):
                d = sfn.describe_execution(executionArn=ex["executionArn"])
                view = self._executions.get(ex["executionArn"])
                out.append(
                    ExecutionInfo(
                        arn=d["executionArn"],
                        name=d.get("name", ""),
                        status=d["status"],
                        input=_loads(d.get("input")),
                        output=_loads(d.get("output")),
                        start=d.get("startDate"),
                        stop=d.get("stopDate"),
                        error=d.get("error"),
                        cause=d.get("cause"),
                        states=list(view.states) if view else [],
                    )
                )
        out.sort(key=lambda e: e.start)
        return out

    def execution_history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        return events

    def state_attempts(self, execution_arn: str, state: str) -> list[dict[str, Any]]:
        """Each attempt of a Task state, in order: ``{"scheduled": datetime, "ended": datetime | None,
        "error": Step Functions error name or None, "cause": str | None}``. The gap between one attempt's
        ``ended`` and the next one's ``scheduled`` is the ``Retry`` back-off Step Functions slept."""
        attempts: list[dict[str, Any]] = []
        current: str | None = None
        for e in self.execution_history(execution_arn):
            kind = e["type"]
            if kind.endswith("StateEntered"):
                current = e["stateEnteredEventDetails"]["name"]
            elif kind.endswith("StateExited"):
                current = None
            if current != state:
                continue
            if kind in ("TaskScheduled", "LambdaFunctionScheduled"):
                attempts.append({"scheduled": e["timestamp"], "ended": None, "error": None, "cause": None})
            elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded") and attempts:
                attempts[-1]["ended"] = e["timestamp"]
            elif kind in ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut") and attempts:
                details = e.get("taskFailedEventDetails") or e.get("lambdaFunctionFailedEventDetails") or {}
                attempts[-1].update(ended=e["timestamp"], error=details.get("error"), cause=details.get("cause"))
        return attempts

    # ============================================================================================ outputs

    def published_events(self, bus: str | None = None) -> list[dict[str, Any]]:
        """Every event accepted by ``PutEvents`` (AWS envelope shape), optionally only those of one bus."""
        if self.router is None:
            return []
        return [p.event for p in list(self.router.published) if bus is None or p.bus == bus]

    @property
    def event_source(self) -> str:
        """The ``source`` of the orchestrator's own events (config ``eventSource``)."""
        return str(self.config.get("eventSource", DEFAULT_EVENT_SOURCE))

    def completion_events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Events the orchestrator published on its custom bus, oldest first: the terminal ``Image Set Copy
        Succeeded`` / ``Image Set Copy Failed`` / ``Copy Job Rejected`` and the planner's ``Import Job Planned`` /
        ``Import Job Failures``. (``published_events(bus)`` also has what clients put, e.g. ``Copy Requested``.)"""
        events = self.published_events(self.event_bus_name)
        return [
            e
            for e in events
            if e["source"] == self.event_source and (detail_type is None or e["detail-type"] == detail_type)
        ]

    def queue_messages(self, queue: str) -> list[dict[str, Any]]:
        """Peek at every message of a queue (construct id, URL or name) without consuming it."""
        from moto.sqs.models import sqs_backends

        if queue.startswith("http"):
            url = queue
        else:
            try:
                url = self.queue_url(queue)
            except KeyError:
                url = self.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
        name = url.rsplit("/", 1)[-1]
        q = sqs_backends[ACCOUNT][REGION].get_queue(name)
        out = []
        for m in list(q._messages):
            out.append(
                {
                    "MessageId": m.id,
                    "Body": m.body,
                    "body": _loads(m.body),
                    "MessageAttributes": {
                        k: v.get("string_value", v.get("StringValue")) for k, v in (m.message_attributes or {}).items()
                    },
                    "ApproximateReceiveCount": m.approximate_receive_count,
                }
            )
        return out

    def sqs_batches(self) -> list[BatchResult]:
        """Every batch the SQS poller handed to a function: ``received``, ``failed`` message ids, ``function_error``."""
        return list(self.poller.batches) if self.poller is not None else []

    def dlq_messages(self) -> list[dict[str, Any]]:
        """Messages in the job dead-letter queue (redriven after ``maxReceiveCount``, or rejected jobs)."""
        return self.queue_messages(self.dlq_url)


# ================================================================================================ helpers

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


def _construct_id(path: str) -> str:
    parts = path.split("/")
    if parts and parts[-1] == "Resource":
        parts = parts[:-1]
    return parts[-1] if parts else path


_ZIP_CACHE: dict[tuple[str, float], bytes] = {}


def _zip_dir(path: Path) -> bytes:
    latest = max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)
    key = (str(path), latest)
    if key not in _ZIP_CACHE:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for file in sorted(path.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                    zf.write(file, file.relative_to(path).as_posix())
        _ZIP_CACHE.clear()
        _ZIP_CACHE[key] = buf.getvalue()
    return _ZIP_CACHE[key]
