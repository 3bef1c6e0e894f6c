"""The hicopy configuration: defaults, CLI overrides and clear errors naming the key and the bad value."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.app_factory import build_app, cdk_json_context
from infra.config import ConfigError, HicopyConfig, config_from_dict, load_config
from tests.infra.helpers import DS1, DS2

ROOT = Path(__file__).resolve().parents[2]


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return str(info.value)


def test_defaults() -> None:
    config = config_from_dict({"datastoreIds": [DS1]})
    assert config == HicopyConfig.model_validate({"datastoreIds": [DS1]})
    assert config.post_import_policy == "none"
    assert (config.copy_rate_per_second, config.copy_burst, config.max_frames_per_copy) == (0.25, 1, 1000)
    polling = config.polling
    assert (polling.first_interval_seconds, polling.backoff_rate, polling.max_delay_seconds) == (5, 2.0, 120)
    assert polling.max_wait_seconds == 43_200
    assert (config.event_source, config.event_bus_name) == ("hicopy.orchestrator", "hicopy-events")
    assert (config.archive_retention_days, config.alarm_email, config.consumer_max_concurrency) == (30, None, 2)
    assert (config.log_retention_days, config.log_execution_data, config.execution_timeout_hours) == (365, False, 48)
    assert config.stack_name == "HealthImagingCopyOrchestrator"
    assert config.import_output_buckets == config.import_output_kms_key_arns == []


def test_cdk_json_ships_no_hicopy_settings() -> None:
    """The defaults live in infra.config only; cdk.json keeps what CDK needs (the user adds their own values)."""
    cdk_json = json.loads((ROOT / "cdk.json").read_text())
    assert cdk_json["notices"] is False
    context = cdk_json_context()
    assert context["cli-telemetry"] is False
    assert not [key for key in context if key.startswith("hicopy")]
    assert context["@aws-cdk/core:validateAgainstDefaultRules"] is True  # cdk init's recommended flags


def test_missing_datastore_ids_explains_how_to_set_them() -> None:
    message = _error({})
    assert "hicopy.datastoreIds is required" in message
    assert "-c hicopy:datastoreIds=" in message
    assert "cdk.json" in message


def test_build_app_without_datastores_fails_clearly() -> None:
    with pytest.raises(ConfigError, match=r"hicopy\.datastoreIds is required"):
        build_app(bundle=False, cfn_validation=False)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"datastoreIds": [DS1, "NOT-AN-ID"]}, "hicopy.datastoreIds[1]: not a HealthImaging data store id"),
        ({"datastoreIds": []}, "hicopy.datastoreIds: List should have at least 1 item"),
        ({"datastoreIds": [DS1, DS1]}, "duplicate entries"),
        ({"datastoreIds": [DS1], "postImportPolicy": "merge"}, "hicopy.postImportPolicy: Input should be 'none'"),
        (
            {"datastoreIds": [DS1], "postImportPolicy": "consolidate"},
            "importOutputBuckets must name the DICOM import output bucket(s)",
        ),
        ({"datastoreIds": [DS1], "deleteAfterConsolidate": True}, "deleteAfterConsolidate=true requires"),
        ({"datastoreIds": [DS1], "importOutputBuckets": ["Bad_Bucket"]}, "hicopy.importOutputBuckets[0]"),
        ({"datastoreIds": [DS1], "importOutputKmsKeyArns": ["alias/foo"]}, "hicopy.importOutputKmsKeyArns[0]"),
        ({"datastoreIds": [DS1], "copyRatePerSecond": 0}, "hicopy.copyRatePerSecond: Input should be greater than 0"),
        ({"datastoreIds": [DS1], "copyBurst": 0}, "hicopy.copyBurst"),
        ({"datastoreIds": [DS1], "maxFramesPerCopy": 100_001}, "hicopy.maxFramesPerCopy"),
        ({"datastoreIds": [DS1], "polling": {"backoffRate": 0.5}}, "hicopy.polling.backoffRate"),
        ({"datastoreIds": [DS1], "polling": {"firstIntervalSeconds": 0}}, "hicopy.polling.firstIntervalSeconds"),
        (
            {"datastoreIds": [DS1], "polling": {"firstIntervalSeconds": 60, "maxDelaySeconds": 30}},
            "polling.maxDelaySeconds (30) must be >= polling.firstIntervalSeconds (60)",
        ),
        ({"datastoreIds": [DS1], "polling": {"maxWait": 10}}, "hicopy.polling.maxWait: unknown key"),
        (
            {"datastoreIds": [DS1], "polling": {"maxWaitSeconds": 200_000}},
            "polling.maxWaitSeconds (200000) must be shorter than executionTimeoutHours",
        ),
        ({"datastoreIds": [DS1], "eventSource": "aws.medical-imaging"}, "reserved for AWS services"),
        ({"datastoreIds": [DS1], "eventBusName": "default"}, "hicopy.eventBusName"),
        ({"datastoreIds": [DS1], "alarmEmail": "not-an-email"}, "hicopy.alarmEmail"),
        ({"datastoreIds": [DS1], "consumerMaxConcurrency": 1}, "hicopy.consumerMaxConcurrency"),
        ({"datastoreIds": [DS1], "logRetentionDays": 42}, "hicopy.logRetentionDays: must be one of"),
        ({"datastoreIds": [DS1], "datastoreID": [DS1]}, "hicopy.datastoreID: unknown key"),
    ],
)
def test_invalid_values_are_named(data: dict[str, Any], expected: str) -> None:
    message = _error(data)
    assert expected in message
    assert message.startswith("Invalid hicopy configuration")


def test_bad_value_is_shown() -> None:
    assert "(got 'NOT-AN-ID')" in _error({"datastoreIds": ["NOT-AN-ID"]})


def test_cli_overrides() -> None:
    context: dict[str, Any] = {
        "hicopy": {"datastoreIds": ["ignored" * 4], "copyBurst": 1},
        "hicopy:datastoreIds": f"{DS1}, {DS2}",
        "hicopy:copyBurst": "3",
        "hicopy:copyRatePerSecond": "0.5",
        "hicopy:logExecutionData": "true",
        "hicopy:alarmEmail": "ops@example.com",
        "hicopy:importOutputBuckets": '["bucket-a"]',
        "hicopy:postImportPolicy": "promote",
        "hicopy:polling": '{"firstIntervalSeconds": 2}',
        "hicopy:polling.maxWaitSeconds": "600",
    }
    config = load_config(context.get)
    assert config.datastore_ids == [DS1, DS2]
    assert (config.copy_burst, config.copy_rate_per_second, config.log_execution_data) == (3, 0.5, True)
    assert config.import_output_buckets == ["bucket-a"]
    assert config.post_import_policy == "promote"
    assert (config.polling.first_interval_seconds, config.polling.max_wait_seconds) == (2, 600)
    assert config.alarm_email == "ops@example.com"


def test_cli_override_bad_json_is_named() -> None:
    context = {"hicopy:polling": "{not json", "hicopy:datastoreIds": DS1}
    with pytest.raises(ConfigError, match=r"hicopy:polling: not valid JSON"):
        load_config(context.get)


def test_app_py_reports_config_errors_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"hicopy:copyBurst": "2"}))  # as the CDK CLI passes -c
    monkeypatch.setenv("SKIP_BUNDLING", "1")
    app_py = importlib.import_module("app")
    assert app_py.main() == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: Invalid hicopy configuration")
    assert "hicopy.datastoreIds is required" in stderr


def _readme_value(text: str) -> Any:
    """A default as the README's configuration table writes it: JSON, ``{key:value, ...}`` or a bare word."""
    if text.startswith("{") and '"' not in text:
        pairs = (part.split(":", 1) for part in text.strip("{}").split(","))
        return {key.strip(): json.loads(value) for key, value in pairs}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def test_readme_configuration_table_shows_the_defaults() -> None:
    section = (ROOT / "README.md").read_text().split("### Configuration", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    defaults = config_from_dict({"datastoreIds": [DS1]}).model_dump(by_alias=True, mode="json")
    shown: dict[str, Any] = {}
    for row in rows:
        keys_cell, default_cell = row.split(" | ")[:2]
        keys = re.findall(r"`([^`]+)`", keys_cell)
        values = re.findall(r"`([^`]+)`", default_cell) or [default_cell.strip("* ")]
        assert len(keys) == len(values), row
        shown |= {key: _readme_value(value) for key, value in zip(keys, values, strict=True)}
    assert shown.pop("datastoreIds") == "required"
    assert shown == {key: value for key, value in defaults.items() if key != "datastoreIds"}
