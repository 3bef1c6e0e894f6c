"""What the fuzz and security suites share: an AWS environment (moto + the HealthImaging emulator + the handlers'
environment variables + a manual clock, the approach of ``tests/functional/conftest.py``), a recorder of every AWS
operation a handler performs, checks of the AWS service limits moto does not enforce, and an SQS batch builder.

``aws_environment`` is a context manager rather than a fixture so that module-scoped fixtures (and Hypothesis
tests, which must not reuse function-scoped fixtures) can hold one environment for many examples.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
from moto import mock_aws

from hicopy import clock as clock_module
from offline.healthimaging import HealthImagingEmulator
from tests.fakes import FakeClock

BUS, SOURCE = "hicopy-events", "hicopy.orchestrator"
ACCOUNT, REGION = "123456789012", "us-east-1"
DATASTORE_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
IMPORT_BUCKET = "imports"
TABLE = "state"

# --- AWS limits moto does not enforce (checked on every recorded call) -------------------------------------------
PUT_EVENTS_ENTRY_LIMIT = 256 * 1024  # bytes per PutEvents entry (EventBridge quota)
EXECUTION_INPUT_LIMIT = 256 * 1024  # bytes of StartExecution input (Step Functions quota)


_SQS_REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_text_problem(text: str) -> str | None:
    """SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF in bodies and attributes."""
    found = _SQS_REFUSED.search(text)
    if found is None:
        return None
    return f"character U+{ord(found.group()):04X} at {found.start()} is not allowed by SQS"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def limit_problems(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """What the real service would refuse in this call (moto accepts it)."""
    problems: list[str] = []
    if service == "sqs" and operation == "SendMessage":
        if (p := sqs_text_problem(params.get("MessageBody", ""))) is not None:
            problems.append(f"SendMessage body: {p}")
        for name, value in (params.get("MessageAttributes") or {}).items():
            if (p := sqs_text_problem(value.get("StringValue", ""))) is not None:
                problems.append(f"SendMessage attribute {name}: {p}")
    elif service == "events" and operation == "PutEvents":
        for entry in params.get("Entries", []):
            # EventBridge's documented entry size: Time (14) + Source + DetailType + Detail + Resources, UTF-8.
            size = 14 + sum(_utf8_len(entry.get(k, "")) for k in ("Source", "DetailType", "Detail"))
            size += sum(_utf8_len(r) for r in entry.get("Resources", []))
            if size > PUT_EVENTS_ENTRY_LIMIT:
                problems.append(f"PutEvents {entry.get('DetailType')}: entry is {size} bytes (limit 256 KiB)")
    elif service == "stepfunctions" and operation == "StartExecution":
        size = _utf8_len(params.get("input", ""))
        if size > EXECUTION_INPUT_LIMIT:
            problems.append(f"StartExecution {params.get('name')}: input is {size} bytes (limit 256 KiB)")
    return problems


# --- recording the AWS operations a handler performs --------------------------------------------------------------
_EMULATOR_DIR = str(Path(__file__).resolve().parents[2] / "offline")


@dataclass(frozen=True)
class Call:
    handler: str  # e.g. "hicopy.handlers.submit.handler", as in the template's Handler property
    service: str  # botocore service name: medical-imaging, sqs, events, stepfunctions, dynamodb, s3
    operation: str  # API operation name, e.g. CopyImageSet
    params: dict[str, Any]


def _copy(params: dict[str, Any]) -> dict[str, Any]:
    try:
        return copy.deepcopy(params)
    except Exception:  # a streaming body, say: keep the rest
        return dict(params)


@dataclass
class CallRecorder:
    """A botocore ``before-parameter-build`` handler: every API call any client makes while a handler runs.

    Registered in ``botocore.handlers.BUILTIN_HANDLERS`` (sessions created later) and on boto3's default session
    (clients created later), like the emulator's hook; the handlers create their clients lazily, after their caches
    are cleared, so every client they use goes through it. Calls made by the emulator itself are not the handler's.
    """

    calls: list[Call] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # AWS limits the call would break
    handler: str | None = None

    def __repr__(self) -> str:  # botocore logs handlers at DEBUG: never the recorded parameters
        return f"<CallRecorder {len(self.calls)} calls>"

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.handler is None or self._from_emulator():
            return
        service, operation = model.service_model.service_name, model.name
        self.calls.append(Call(self.handler, service, operation, _copy(params)))
        self.problems += [f"{self.handler}: {p}" for p in limit_problems(service, operation, params)]

    @staticmethod
    def _from_emulator() -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.startswith(_EMULATOR_DIR):
                return True
            frame = frame.f_back  # type: ignore[assignment]
        return False

    @contextmanager
    def running(self, handler: str) -> Iterator[None]:
        previous, self.handler = self.handler, handler
        try:
            yield
        finally:
            self.handler = previous

    def install(self) -> None:
        botocore.handlers.BUILTIN_HANDLERS.append(("before-parameter-build", self))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION._session.register("before-parameter-build", self)

    def uninstall(self) -> None:
        if ("before-parameter-build", self) in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove(("before-parameter-build", self))
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION._session.unregister("before-parameter-build", self)

    def of(self, handler: str) -> list[Call]:
        return [c for c in self.calls if c.handler == handler]

    def clear(self) -> None:
        self.calls.clear()
        self.problems.clear()


# --- the environment ----------------------------------------------------------------------------------------------
@dataclass
class LambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


CTX = LambdaContext()


def clear_handler_caches() -> None:
    """Forget every cached adapter, client and settings object of the Lambda code (a new cold start)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("hicopy."):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@dataclass
class AwsEnv:
    emulator: HealthImagingEmulator
    clock: FakeClock
    recorder: CallRecorder
    job_queue_url: str
    dlq_url: str
    capture_url: str
    state_machine_arn: str
    datastore_id: str = DATASTORE_ID
    _machines: Iterator[int] = field(default_factory=lambda: count(1))
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """The test's own clients (created once: a client costs ~30 ms)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service)
        return self._clients[service]

    def events(self) -> list[dict[str, Any]]:
        """Every event our code put on the custom bus (a capture rule delivers them to an SQS queue)."""
        return [json.loads(m["Body"]) for m in self._drain(self.capture_url)]

    def dlq(self) -> list[dict[str, Any]]:
        """Every message in the rejected-jobs queue (removed)."""
        return self._drain(self.dlq_url)

    def job_queue(self) -> list[dict[str, Any]]:
        return self._drain(self.job_queue_url)

    def _drain(self, url: str) -> list[dict[str, Any]]:
        sqs, out = self.client("sqs"), list[dict[str, Any]]()
        while True:
            msgs = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
            ).get("Messages", [])
            if not msgs:
                return out
            out += msgs
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(msgs)]
            )

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn)
        return [sfn.describe_execution(executionArn=e["executionArn"]) for page in pages for e in page["executions"]]

    def fresh_state_machine(self) -> str:
        """Point the consumer at a new, empty state machine (a clean slate of execution names).

        A warm consumer keeps its ``ExecutionStarter``: it is repointed rather than rebuilt (a cold start would
        create three clients per example)."""
        sm = self.client("stepfunctions").create_state_machine(
            name=f"copy-{next(self._machines)}",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        )
        self.state_machine_arn = sm["stateMachineArn"]
        os.environ["STATE_MACHINE_ARN"] = self.state_machine_arn
        from hicopy.handlers import consumer

        if consumer._adapters.cache_info().currsize:
            consumer._adapters()[0].state_machine_arn = self.state_machine_arn
        return self.state_machine_arn


@contextmanager
def aws_environment(**extra_env: str) -> Iterator[AwsEnv]:
    """moto (SQS, EventBridge with a capture rule, DynamoDB, Step Functions without executing, S3), the emulator
    with one data store, every handler's environment variables, a manual clock, and the call recorder."""
    clock = FakeClock()
    previous_clock = clock_module.set_clock(clock)
    saved_env = dict(os.environ)
    recorder = CallRecorder()
    try:
        with mock_aws():
            sqs, events, ddb, sfn, s3 = (boto3.client(s) for s in ("sqs", "events", "dynamodb", "stepfunctions", "s3"))
            dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
            jobs = sqs.create_queue(QueueName="jobs")["QueueUrl"]
            capture = sqs.create_queue(QueueName="capture")["QueueUrl"]
            capture_arn = sqs.get_queue_attributes(QueueUrl=capture, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.create_event_bus(Name=BUS)
            events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]}))
            events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "capture", "Arn": capture_arn}])
            ddb.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            s3.create_bucket(Bucket=IMPORT_BUCKET)
            sm = sfn.create_state_machine(
                name="copy",
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
                definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
            )
            emulator = HealthImagingEmulator(clock=clock, background=False, copy_duration=10.0)
            emulator.create_datastore("security", datastore_id=DATASTORE_ID)
            os.environ.update(
                {
                    "DATASTORE_IDS": DATASTORE_ID,
                    "EVENT_BUS_NAME": BUS,
                    "EVENT_SOURCE": SOURCE,
                    "STATE_MACHINE_ARN": sm["stateMachineArn"],
                    "REJECTED_QUEUE_URL": dlq,
                    "JOB_QUEUE_URL": jobs,
                    "STATE_TABLE_NAME": TABLE,
                    "MAX_FRAMES_PER_COPY": "1000",
                    "COPY_RATE_PER_SECOND": "0.25",
                    "COPY_BURST": "1",
                    "POST_IMPORT_POLICY": "consolidate",
                    "DELETE_AFTER_CONSOLIDATE": "true",
                    "CONSOLIDATE_FORCE": "false",
                    "MANIFEST_WAIT_SECONDS": "30",
                    **extra_env,
                }
            )
            clear_handler_caches()
            recorder.install()
            try:
                with emulator:
                    yield AwsEnv(emulator, clock, recorder, jobs, dlq, capture, sm["stateMachineArn"])
            finally:
                recorder.uninstall()
                clear_handler_caches()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        clock_module.set_clock(previous_clock)


# --- driving handlers ---------------------------------------------------------------------------------------------
def handler_path(module: Any) -> str:
    return f"{module.__name__}.handler"


def invoke(env: AwsEnv, module: Any, event: dict[str, Any]) -> Any:
    """Call ``module.handler`` as Lambda would, recording its AWS calls under its handler path."""
    with env.recorder.running(handler_path(module)):
        return module.handler(event, CTX)


def task(env: AwsEnv, module: Any, state: dict[str, Any], retry: int = 0) -> dict[str, Any]:
    """A state-machine task: the handler gets ``{state, executionArn, retryCount}`` and returns the next state."""
    result: dict[str, Any] = invoke(env, module, {"state": state, "executionArn": "arn:exec:1", "retryCount": retry})
    return result


def caught(state: dict[str, Any], exc: Exception, key: str = "error") -> dict[str, Any]:
    """What a Step Functions Catch with ResultPath ``$.<key>`` adds."""
    cause = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})
    return {**state, key: {"Error": type(exc).__name__, "Cause": cause}}


def sqs_record(
    body: str, message_id: str, attributes: dict[str, dict[str, Any]] | None = None, receive_count: int = 1
) -> dict[str, Any]:
    """One record of a Lambda SQS event. ``attributes``: name -> {"stringValue"|"binaryValue": ..., "dataType": ...}."""
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1800000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1800000000000",
        },
        "messageAttributes": attributes or {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs",
        "awsRegion": REGION,
    }


def string_attributes(values: dict[str, str]) -> dict[str, dict[str, str]]:
    return {k: {"stringValue": v, "dataType": "String"} for k, v in values.items()}
