"""Deploying the synthesized stack into moto, and where its resources ended up (``Deployment``).

``deploy(assembly, ...)``, in order:

1. uploads every file asset (a Lambda code folder, zipped) to the CDK bootstrap bucket and writes the bootstrap
   version parameter, as ``cdk deploy`` would find them;
2. creates the stack with moto's CloudFormation, after the fix-ups of ``offline.runtime.cfn`` (what moto cannot
   create is created through the API afterwards, or dropped, and listed in ``template_fixups``);
3. creates each state machine again in moto's *executing* Step Functions backend (CloudFormation puts it in the
   non-executing one), under the same name and ARN;
4. registers each function with the ``LambdaRunner`` (its handler runs from its code asset folder), and each
   function's ``DeadLetterConfig`` with the ``AsyncInvoker`` (moto drops it).

``attach_event_source_mappings`` then switches moto's SQS event source mappings off and hands them to the
runtime's ``SqsPoller``.
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.runtime.assembly import AssemblyError, CloudAssembly
from offline.runtime.cfn import apply_deferred, prepare_template, resolve
from offline.runtime.eventbridge import AsyncInvoker
from offline.runtime.lambdas import FunctionSpec, LambdaRunner
from offline.runtime.sqs_poller import SqsPoller

LOG = logging.getLogger(__name__)

ACCOUNT = "123456789012"
REGION = "us-east-1"
BOOTSTRAP_QUALIFIER = "hnb659fds"
DEFAULT_CLIENT_SOURCE = "local.client"  # put_event's source when no rule names one

Clients = Callable[[str], Any]  # service name -> boto3 client on the runtime


def load_assembly(config: Mapping[str, Any], cdk_out: Path | None, stack_name: str | None) -> CloudAssembly:
    """``cdk_out`` as it is, or the real CDK app synthesized with the ``hicopy`` context ``config`` (cached)."""
    if cdk_out is not None:
        return CloudAssembly.load(cdk_out, stack_name)
    from offline.runtime.synth import synthesize

    return CloudAssembly.load(synthesize(context={"hicopy": dict(config)}), stack_name)


@dataclass
class Deployment:
    """The deployed stack: its outputs, and the physical id and construct id of each resource (by logical id)."""

    assembly: CloudAssembly
    outputs: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    construct_ids: dict[str, str] = field(default_factory=dict)
    state_machine_arns: list[str] = field(default_factory=list)
    template_fixups: list[str] = field(default_factory=list)
    skipped_resources: dict[str, str] = field(default_factory=dict)
    event_sources: set[str] = field(default_factory=set)  # the EVENT_SOURCE the functions publish with
    timings: dict[str, float] = field(default_factory=dict)

    def logical_id(self, construct_id: str) -> str:
        return self.assembly.logical_id(construct_id)

    def physical_id(self, construct_id: str) -> str:
        """Physical id (queue URL, function name, state machine ARN, ...) of a construct of the stack."""
        return self.physical_ids[self.logical_id(construct_id)]

    @property
    def job_queue_url(self) -> str:
        return self.outputs.get("JobQueueUrl") or self.physical_id("JobQueue")

    @property
    def dlq_url(self) -> str:
        return self.outputs.get("JobDeadLetterQueueUrl") or self.physical_id("JobDeadLetterQueue")

    @property
    def event_bus_name(self) -> str:
        return self.outputs.get("EventBusName") or self.physical_id("CopyEventBus")

    @property
    def state_machine_arn(self) -> str:
        return self.outputs.get("StateMachineArn") or self.state_machine_arns[0]

    @property
    def event_source(self) -> str:
        """The ``source`` of the orchestrator's own events (config ``eventSource``, as its functions got it)."""
        if len(self.event_sources) != 1:
            raise AssemblyError(f"expected one EVENT_SOURCE among the functions, found {sorted(self.event_sources)}")
        return next(iter(self.event_sources))

    def source_for(self, detail_type: str) -> str:
        """A source the stack's rules accept for this detail-type (the rule's own ``source``, if it names one)."""
        for res in self.assembly.resources_of_type("AWS::Events::Rule").values():
            pattern = res.get("Properties", {}).get("EventPattern") or {}
            if detail_type in (pattern.get("detail-type") or []):
                sources = pattern.get("source") or []
                if sources and isinstance(sources[0], str):
                    return str(sources[0])
        return DEFAULT_CLIENT_SOURCE


def deploy(
    assembly: CloudAssembly, *, clients: Clients, runner: LambdaRunner, async_invoker: AsyncInvoker
) -> Deployment:
    """Deploy ``assembly``'s stack into moto (see the module docstring); returns where everything is."""
    d = Deployment(assembly)
    _upload_assets(assembly, clients)
    cfn = clients("cloudformation")
    t_cfn = time.monotonic()
    prepared = prepare_template(assembly.template, stack_name=assembly.stack_name, account=ACCOUNT, region=REGION)
    d.template_fixups = list(prepared.notes)
    d.skipped_resources = dict(prepared.dropped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfn.create_stack(
            StackName=assembly.stack_name,
            TemplateBody=json.dumps(prepared.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    d.timings["create_stack"] = time.monotonic() - t_cfn
    stack = cfn.describe_stacks(StackName=assembly.stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {assembly.stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason')}")
    d.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=assembly.stack_name):
        for summary in page["StackResourceSummaries"]:
            d.physical_ids[summary["LogicalResourceId"]] = summary.get("PhysicalResourceId", "")
    d.construct_ids = {lid: _construct_id(path) for lid, path in assembly.construct_paths().items()}
    problems = apply_deferred(prepared, clients=clients, stack_name=assembly.stack_name, account=ACCOUNT, region=REGION)
    for problem in problems:
        LOG.warning("not created locally: %s", problem)
        d.template_fixups.append(f"NOT CREATED: {problem}")
    t_reg = time.monotonic()
    _register_state_machines(d, clients)
    d.timings["register_state_machines"] = time.monotonic() - t_reg
    _register_functions(d, clients, runner, async_invoker)
    return d


def attach_event_source_mappings(lambda_client: Any, poller: SqsPoller) -> None:
    """moto would invoke synchronously inside ``SendMessage``, one record at a time: switch each SQS mapping off (a
    delete alone does not detach it in moto 5.2.5) and let ``poller`` poll the enabled ones with Lambda's
    semantics instead."""
    for esm in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
        if ":sqs:" not in esm["EventSourceArn"]:
            continue
        enabled = esm.get("State", "Enabled") == "Enabled"
        lambda_client.update_event_source_mapping(UUID=esm["UUID"], Enabled=False)
        if enabled:
            poller.add_mapping(esm)


def _upload_assets(assembly: CloudAssembly, clients: Clients) -> None:
    s3 = clients("s3")
    bucket = f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{ACCOUNT}-{REGION}"
    s3.create_bucket(Bucket=bucket)
    for key, asset in assembly.assets.items():
        s3.put_object(Bucket=bucket, Key=key, Body=_zip_dir(asset.path))
    clients("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value="30", Type="String", Overwrite=True
    )


def _register_state_machines(d: Deployment, clients: Clients) -> None:
    """moto's CFN puts state machines in the non-executing backend: create them again in the executing one."""
    from moto.stepfunctions.models import stepfunctions_backends

    sfn = clients("stepfunctions")
    static = stepfunctions_backends[ACCOUNT][REGION]
    for lid, res in d.assembly.resources_of_type("AWS::StepFunctions::StateMachine").items():
        arn = d.physical_ids[lid]
        sm = static.describe_state_machine(arn)
        kwargs: dict[str, Any] = {"name": sm.name, "definition": sm.definition, "roleArn": sm.roleArn}
        sm_type = res.get("Properties", {}).get("StateMachineType")
        if sm_type:
            kwargs["type"] = sm_type
        created = sfn.create_state_machine(**kwargs)["stateMachineArn"]
        if created != arn:
            raise RuntimeError(f"re-registered state machine has ARN {created}, expected {arn}")
        d.state_machine_arns.append(arn)


def _register_functions(d: Deployment, clients: Clients, runner: LambdaRunner, async_invoker: AsyncInvoker) -> None:
    lam = clients("lambda")
    for lid, res in d.assembly.resources_of_type("AWS::Lambda::Function").items():
        name = d.physical_ids.get(lid)
        code_dir = d.assembly.code_dir_of(lid)
        if not name or code_dir is None:
            continue
        cfg = lam.get_function_configuration(FunctionName=name)
        source = ((cfg.get("Environment") or {}).get("Variables") or {}).get("EVENT_SOURCE")
        if source:
            d.event_sources.add(str(source))
        dlq = (res.get("Properties", {}).get("DeadLetterConfig") or {}).get("TargetArn")
        if dlq is not None:  # moto drops a function's DeadLetterConfig; the async invoker needs it
            target = resolve(dlq, stack_name=d.assembly.stack_name, account=ACCOUNT, region=REGION)
            async_invoker.dead_letter_targets[cfg["FunctionArn"]] = str(target)
        runner.register(
            FunctionSpec(
                logical_id=lid,
                construct_id=d.construct_ids.get(lid, lid),
                function_name=name,
                function_arn=cfg["FunctionArn"],
                handler=cfg["Handler"],
                code_dir=code_dir,
                timeout=int(cfg.get("Timeout") or 3),
                memory_size=int(cfg.get("MemorySize") or 128),
            )
        )


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
