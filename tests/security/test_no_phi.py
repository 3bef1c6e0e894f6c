"""No PHI leaves the image sets through us: with Patient/Study elements carrying distinctive values (``PHI``,
``OTHER_PHI``), every handler runs (copy success, copy failure with the service's message, a missing image set,
reconciliation, delete-after, jobs rejected for PHI in unknown fields, import planning) at LOG_LEVEL=DEBUG, and
none of those values may appear in a log line, a published event, a message attribute we add, a message the
planner queues, an execution input, a task output, or an error a task raises (Step Functions' ``Cause``).

The one allowed exception: a rejected job's own body, which the user sent, echoed in ``originalBody`` of
``Copy Job Rejected`` (and kept as the dead-letter message body).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from hicopy.contract import IMPORT_FAILURES, REJECTED
from hicopy.domain.intake import accept
from hicopy.errors import JobRejected
from tests.security.scenarios import ALL_PHI_VALUES, PHI, ScenarioRun
from tests.support.fakes import FakeClock

OUR_LOGGERS = ("hicopy", "aws_lambda_powertools")  # the Lambda code's logger and the Powertools utilities


def leaks(text: str) -> list[str]:
    """PHI values in ``text``, and any fragment carrying the marker all of them share (case-insensitive)."""
    found = [value for value in ALL_PHI_VALUES if value in text]
    if "zzphi" in text.lower() and not found:
        found.append("a ZZPHI fragment")
    return found


def assert_clean(where: str, items: list[tuple[str, Any]]) -> None:
    dirty = {label: leaks(text if isinstance(text, str) else json.dumps(text)) for label, text in items}
    dirty = {label: found for label, found in dirty.items() if found}
    assert not dirty, f"PHI in {where}: {dirty}"


def test_the_scenarios_did_handle_phi(run: ScenarioRun) -> None:
    """Not vacuous: the handlers read the PHI-carrying metadata and search results, rejected jobs carrying PHI,
    and logged at DEBUG."""
    operations = {c.operation for c in run.calls}
    assert {"GetImageSetMetadata", "SearchImageSets", "CopyImageSet", "DeleteImageSet"} <= operations
    rejected = [e for e in run.events if e["detail-type"] == REJECTED]
    assert len(rejected) == 2 and all(set(leaks(e["detail"]["originalBody"])) == set(PHI.values()) for e in rejected)
    assert run.logs.level == logging.DEBUG, "the Lambda code's logger ran at DEBUG"
    lines = run.logs.lines()
    assert any('"job rejected"' in line for line in lines) and any('"import planned"' in line for line in lines)
    # The root logger ran at DEBUG, yet the SDK's loggers (which would log whole request/response bodies) are pinned.
    assert logging.getLogger("botocore").level == logging.WARNING


def test_no_phi_in_our_log_lines(run: ScenarioRun) -> None:
    lines = [("stdout/powertools", line) for line in run.logs.lines()]
    records = [(name, text) for _, name, text in run.logs.records if name.startswith(OUR_LOGGERS)]
    assert_clean("the Lambda code's logs and metrics", lines + records)


def test_no_phi_in_published_events_except_the_rejected_body(run: ScenarioRun) -> None:
    items = []
    for event in run.events:
        detail = dict(event["detail"])
        if event["detail-type"] == REJECTED:
            detail.pop("originalBody")  # the user's own message: the allowed exception
        items.append((f"{event['detail-type']} {detail.get('jobId') or detail.get('importJobId')}", detail))
    assert_clean("published events", items)
    # Not vacuous: the import's failed file (its S3 key names the patient) was reported, by counts.
    [failures] = [e["detail"] for e in run.events if e["detail-type"] == IMPORT_FAILURES]
    assert failures["failedFiles"] == 1 and failures["failuresByType"] == {"ValidationException": 1}
    assert "failures" not in failures and failures["failureReportS3Uri"].endswith("failure.ndjson")


def test_no_phi_in_message_attributes_we_add(run: ScenarioRun) -> None:
    assert len(run.dlq) == 2
    for message in run.dlq:
        assert leaks(message["Body"]), "the dead-letter queue keeps the rejected body as it was sent"
    attributes = [(f"DLQ {m['MessageId']}", m.get("MessageAttributes", {})) for m in run.dlq]
    assert_clean("dead-letter message attributes", attributes)
    queued = [
        (f"job queue {m['MessageId']}", {"body": m["Body"], **m.get("MessageAttributes", {})}) for m in run.job_queue
    ]
    assert queued, "the planner queued a job"
    assert_clean("jobs the planner queued", queued)


def test_no_phi_in_step_functions_data(run: ScenarioRun) -> None:
    """Execution inputs, task outputs and task errors are kept in the execution history (and, with
    logExecutionData, in CloudWatch Logs)."""
    assert_clean("execution inputs", [(f"input {n}", text) for n, text in enumerate(run.execution_inputs)])
    assert_clean("task outputs", [(handler, output) for handler, output in run.outputs])
    assert_clean("task errors", [(handler, message) for handler, message in run.errors])


def third_party_leaks(run: ScenarioRun) -> dict[str, set[str]]:
    """Logger -> operations whose DEBUG records carried PHI while a handler ran (botocore logs request parameters
    and response bodies at DEBUG)."""
    found: dict[str, set[str]] = {}
    for handler, name, text in run.logs.records:
        if handler and not name.startswith(OUR_LOGGERS) and leaks(text):
            operation = re.search(r"OperationModel\(name=(\w+)\)|\{\"(\w+)\"", text)
            what = next((g for g in operation.groups() if g), "?") if operation else "?"
            found.setdefault(f"{name} ({handler.split('.')[2]})", set()).add(what)
    return found


def test_the_stack_keeps_third_party_debug_logging_off(template: dict[str, Any]) -> None:
    """What keeps those botocore DEBUG records out of CloudWatch Logs today: every function's application log level
    is above DEBUG, and no function logs its incoming event."""
    functions = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Handler", "")).startswith("hicopy.")
    ]
    assert len(functions) == 11  # every function of the stack (the copy waker, safety net and receipts included)
    for props in functions:
        variables = props["Environment"]["Variables"]
        assert variables.get("POWERTOOLS_LOGGER_LOG_EVENT") == "false", props["Handler"]
        assert variables.get("LOG_LEVEL") not in ("DEBUG", "TRACE"), props["Handler"]
        level = props.get("LoggingConfig", {}).get("ApplicationLogLevel")
        assert level in ("INFO", "WARN", "ERROR", "FATAL"), f"{props['Handler']}: ApplicationLogLevel {level!r}"


def test_no_phi_in_any_logger_even_at_debug(run: ScenarioRun) -> None:
    assert not third_party_leaks(run)


@pytest.mark.parametrize("field", ["correlationId", "jobId"])
def test_invalid_values_of_known_fields_are_not_echoed(field: str) -> None:
    job = {"datastoreId": "c0ffee00c0ffee00c0ffee00c0ffee00", "source": {"imageSetId": "a" * 32}}
    job[field] = PHI["StudyDescription"]  # spaces: invalid for both fields
    with pytest.raises(JobRejected) as rejected:
        accept(json.dumps(job), message_id="m", attributes={}, clock=FakeClock())
    assert not leaks(rejected.value.message), rejected.value.message
