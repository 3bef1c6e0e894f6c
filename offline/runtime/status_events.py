"""Step Functions' own "Step Functions Execution Status Change" events, which moto does not emit.

AWS puts one on the default bus (source ``aws.states``) whenever an execution changes status. The runtime puts one
for every execution of the stack's state machines when it ends (SUCCEEDED, FAILED, TIMED_OUT, ABORTED; not the
RUNNING one, which nothing here listens to), in the documented shape (``tests/data/sfn-status-change/``): ``detail``
holds what ``DescribeExecution`` returns, dates in epoch milliseconds, and ``input``/``output`` only when they fit
(``inputDetails``/``outputDetails`` say whether they were included).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from hicopy.contract import EXECUTION_STATUS_CHANGE as STATUS_CHANGE
from hicopy.contract import STATES_SOURCE

# Past this size an event carries no input/output (``included: false``): EventBridge's 256 KB event limit.
MAX_DATA_BYTES = 248 * 1024


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


def _data(text: Any) -> tuple[str | None, dict[str, bool]]:
    if text is None:
        return None, {"included": True}
    if len(str(text).encode("utf-8")) > MAX_DATA_BYTES:
        return None, {"included": False}
    return str(text), {"included": True}


def status_change_detail(described: dict[str, Any]) -> dict[str, Any]:
    """The event's ``detail`` from a ``DescribeExecution`` answer."""
    execution_input, input_details = _data(described.get("input"))
    output, output_details = _data(described.get("output"))
    detail: dict[str, Any] = {
        "executionArn": described["executionArn"],
        "stateMachineArn": described["stateMachineArn"],
        "name": described.get("name"),
        "status": described["status"],
        "startDate": _millis(described.get("startDate")),
        "stopDate": _millis(described.get("stopDate")),
        "input": execution_input,
        "output": output,
        "inputDetails": input_details,
        "outputDetails": output_details if output is not None else None,
    }
    for key in ("error", "cause"):
        if described.get(key) is not None:
            detail[key] = described[key]
    return detail


class ExecutionStatusEvents:
    """Announces each ended execution once: ``emit_due()`` (called by the driver's event loop) finds the executions
    that ended since the last call (moto's in-memory backend, no API call) and puts their events on the default
    bus through the runtime's own clients (the handlers' fault injection does not reach them)."""

    def __init__(
        self, *, clients: Callable[[str], Any], account: str, region: str, state_machine_arns: Sequence[str]
    ) -> None:
        self.clients = clients
        self.account = account
        self.region = region
        self.state_machine_arns = list(state_machine_arns)
        self.emitted: list[dict[str, Any]] = []
        self._announced: set[str] = set()
        self._lock = threading.Lock()

    def _ended(self) -> list[str]:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[self.account][self.region]
        ended: list[str] = []
        for arn in self.state_machine_arns:
            for execution in list(backend.describe_state_machine(arn).executions):
                status = getattr(execution, "exec_status", None)
                if status is None or getattr(status, "value", status) == "RUNNING":
                    continue
                # The executing backend's executions (parser ``Execution``: ``exec_arn``; typed as moto's plain ones).
                execution_arn = str(getattr(execution, "exec_arn", None) or execution.execution_arn)
                if execution_arn not in self._announced:
                    ended.append(execution_arn)
        return ended

    def emit_due(self) -> int:
        with self._lock:
            ended = self._ended()
            self._announced.update(ended)
        for arn in ended:
            described = self.clients("stepfunctions").describe_execution(executionArn=arn)
            detail = status_change_detail(described)
            entry = {
                "Source": STATES_SOURCE,
                "DetailType": STATUS_CHANGE,
                "Detail": json.dumps(detail),
                "Resources": [arn],
            }
            self.clients("events").put_events(Entries=[entry])
            self.emitted.append(detail)
        return len(ended)
