"""The Lambda side of the handler suites: a context, a cold start (the Lambda code's caches cleared), every
handler's environment variables, and the events Lambda and Step Functions give a handler."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from tests.support.aws import ACCOUNT, BUS, REGION, SOURCE, TABLE, Resources


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


def handler_variables(resources: Resources, datastore_id: str) -> dict[str, str]:
    """The environment variables of every handler, naming ``resources``: the consolidate policy with delete-after,
    small enough limits for a few image sets."""
    return {
        "DATASTORE_IDS": datastore_id,
        "EVENT_BUS_NAME": BUS,
        "EVENT_SOURCE": SOURCE,
        "STATE_MACHINE_ARN": resources.state_machine_arn,
        "REJECTED_QUEUE_URL": resources.dlq_url,
        "JOB_QUEUE_URL": resources.job_queue_url,
        "STATE_TABLE_NAME": TABLE,
        "MAX_FRAMES_PER_COPY": "1000",
        "COPY_RATE_PER_SECOND": "0.25",
        "COPY_BURST": "1",
        "RECEIPT_WINDOW_SECONDS": "120",
        "EXECUTION_TIMEOUT_SECONDS": "172800",
        "POST_IMPORT_POLICY": "consolidate",
        "CONSOLIDATE_FORCE": "false",
        "DELETE_AFTER_CONSOLIDATE": "true",
        "IMPORT_REPORT_DETAILS": "false",
        "MANIFEST_WAIT_SECONDS": "30",
        "POLL_FIRST_INTERVAL_SECONDS": "5",
        "POLL_BACKOFF_RATE": "2.0",
        "POLL_MAX_DELAY_SECONDS": "120",
        "POLL_MAX_ATTEMPTS": "724",
        "EVENT_WAIT_SECONDS": "90",
        "EVENTS_WINDOW_SECONDS": "900",
    }


def task_event(state: dict[str, Any], retry: int = 0) -> dict[str, Any]:
    """What a state-machine task gives its handler: the whole state, the execution and the retry count."""
    return {"state": state, "executionArn": "arn:exec:1", "retryCount": retry}


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
