"""The deployed stack the CLI works against: its resources, its configuration and the AWS clients to reach them.

``Stack.resolve`` finds the resources from the CloudFormation stack's outputs (``JobQueueUrl``,
``JobDeadLetterQueueUrl``, ``EventBusName``, ``StateMachineArn``), falling back to its resource list for a missing
output. The configuration the CLI needs (data stores, frame limit, copy rate, post-import policy) is read, when a
command needs it, from the environment of the stack's functions, validated with the same settings models the
functions use, so each default lives in one place. Tests build a ``Stack`` directly from the local runtime.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from hicopy.cli.domain import DatastoreEnv, PaceEnv, PlannerEnv, Policy, PrepareEnv

DEFAULT_STACK_NAME = "HealthImagingCopyOrchestrator"

# Output key -> (resource type, logical ID prefix) to look for when the output is missing.
_OUTPUTS: dict[str, tuple[str, str]] = {
    "JobQueueUrl": ("AWS::SQS::Queue", "JobQueue"),
    "JobDeadLetterQueueUrl": ("AWS::SQS::Queue", "JobDeadLetterQueue"),
    "EventBusName": ("AWS::Events::EventBus", "CopyEventBus"),
    "StateMachineArn": ("AWS::StepFunctions::StateMachine", "CopyStateMachine"),
}


class StackNotFound(Exception):
    """The stack (or one of its resources) cannot be found."""


@dataclass(frozen=True)
class StackConfig:
    """What the deployed functions are configured with (``source`` says where it was read)."""

    datastore_ids: frozenset[str] | None  # None: unknown (the functions' configuration could not be read)
    frame_limit: int
    copy_rate_per_second: float
    copy_burst: int
    post_import_policy: Policy
    consolidate_force: bool
    delete_after_consolidate: bool
    source: str


def _setting(envs: list[dict[str, str]], model: type[BaseModel], key: str) -> Any:
    """``key`` as read by ``model`` from the first environment that sets it and is a valid ``model``; else the
    model's default (None for a required key)."""
    for env in envs:
        if key in env:
            try:
                return getattr(model.model_validate(env), key)
            except ValidationError:
                continue
    return _deployed_default(key)


def _deployed_default(key: str) -> Any:
    """What the stack deploys for ``key`` when the configuration leaves it out: ``HicopyConfig``'s default, the one
    home of the defaults (None for the data stores, which have none)."""
    from infra.config import HicopyConfig

    field_name = {
        "MAX_FRAMES_PER_COPY": "max_frames_per_copy",
        "COPY_RATE_PER_SECOND": "copy_rate_per_second",
        "COPY_BURST": "copy_burst",
        "POST_IMPORT_POLICY": "post_import_policy",
        "CONSOLIDATE_FORCE": "consolidate_force",
        "DELETE_AFTER_CONSOLIDATE": "delete_after_consolidate",
    }.get(key)
    return None if field_name is None else HicopyConfig.model_fields[field_name].default


def config_from_environments(envs: list[dict[str, str]], source: str) -> StackConfig:
    """The stack's configuration from its functions' environments (``[]``: every default, data stores unknown)."""
    datastores = _setting(envs, PrepareEnv, "DATASTORE_IDS")
    return StackConfig(
        datastore_ids=None if datastores is None else DatastoreEnv(DATASTORE_IDS=datastores).datastore_ids,
        frame_limit=_setting(envs, PrepareEnv, "MAX_FRAMES_PER_COPY"),
        copy_rate_per_second=_setting(envs, PaceEnv, "COPY_RATE_PER_SECOND"),
        copy_burst=_setting(envs, PaceEnv, "COPY_BURST"),
        post_import_policy=_setting(envs, PlannerEnv, "POST_IMPORT_POLICY"),
        consolidate_force=_setting(envs, PlannerEnv, "CONSOLIDATE_FORCE"),
        delete_after_consolidate=_setting(envs, PlannerEnv, "DELETE_AFTER_CONSOLIDATE"),
        source=source,
    )


@dataclass
class Stack:
    """The resources of one deployed orchestrator and a way to get AWS clients for them.

    ``client(service)`` returns a boto3 client; ``sleep``/``now`` are the CLI's clock (a test's ``sleep`` drives the
    local runtime while the CLI waits).
    """

    name: str
    job_queue_url: str
    dlq_url: str
    event_bus_name: str
    state_machine_arn: str
    client: Callable[[str], Any]
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time
    _config: StackConfig | None = field(default=None, init=False, repr=False)

    @classmethod
    def resolve(
        cls,
        stack_name: str = DEFAULT_STACK_NAME,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
    ) -> Stack:
        """Find the stack's resources through CloudFormation, as ``aws --region/--profile/--endpoint-url`` would."""
        session = boto3.session.Session(profile_name=profile, region_name=region)
        clients: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in clients:
                clients[service] = session.client(service, region_name=region, endpoint_url=endpoint_url)
            return clients[service]

        values = _outputs(client("cloudformation"), stack_name)
        missing = [key for key in _OUTPUTS if not values.get(key)]
        if missing:
            values |= _from_resources(client("cloudformation"), stack_name, missing)
        return cls(
            name=stack_name,
            job_queue_url=values["JobQueueUrl"],
            dlq_url=values["JobDeadLetterQueueUrl"],
            event_bus_name=values["EventBusName"],
            state_machine_arn=values["StateMachineArn"],
            client=client,
        )

    @property
    def config(self) -> StackConfig:
        """The deployed configuration (read once, on first use)."""
        if self._config is None:
            self._config = self._read_config()
        return self._config

    def _read_config(self) -> StackConfig:
        try:
            envs = list(self._function_environments())
        except (ClientError, BotoCoreError, StackNotFound, ValidationError) as exc:
            return config_from_environments([], f"defaults: the functions' configuration could not be read ({exc})")
        return config_from_environments(envs, f"the environment of the stack's {len(envs)} functions")

    def _function_environments(self) -> Iterator[dict[str, str]]:
        cfn, lambda_ = self.client("cloudformation"), self.client("lambda")
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=self.name):
            for resource in page["StackResourceSummaries"]:
                if resource["ResourceType"] == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
                    conf = lambda_.get_function_configuration(FunctionName=resource["PhysicalResourceId"])
                    yield dict((conf.get("Environment") or {}).get("Variables") or {})

    def execution_arn(self, job_id: str) -> str:
        """Executions are named by job ID."""
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{job_id}"


def _outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise StackNotFound(
                f"stack {stack_name!r} not found ({exc.response['Error'].get('Message', '')}); "
                "check --stack-name, --region and --profile"
            ) from exc
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}


def _from_resources(cfn: Any, stack_name: str, keys: list[str]) -> dict[str, str]:
    """Physical IDs of the resources behind missing outputs (the logical ID starts with the construct ID)."""
    found: dict[str, str] = {}
    resources = [
        r
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        for r in page["StackResourceSummaries"]
    ]
    for key in keys:
        kind, prefix = _OUTPUTS[key]
        # The construct ID followed by CDK's 8-character hash: "JobQueue" must not pick "JobQueuePolicy...".
        pattern = re.compile(rf"{prefix}[0-9A-F]{{8}}$")
        matches = [
            r
            for r in resources
            if r["ResourceType"] == kind and pattern.search(r["LogicalResourceId"]) and r.get("PhysicalResourceId")
        ]
        if not matches:
            raise StackNotFound(f"stack {stack_name!r} has no output {key} and no {kind} named {prefix}*")
        found[key] = matches[0]["PhysicalResourceId"]
    return found
