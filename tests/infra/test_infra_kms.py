"""Customer-managed data store keys (``datastoreKmsKeyArns``): exactly the functions that call HealthImaging may use
them, only through HealthImaging, with the actions the developer guide lists ("Data encryption": kms:DescribeKey for
every operation, kms:Decrypt for reads and searches, kms:GenerateDataKey for writes)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError, config_from_dict
from tests.infra.helpers import (
    DATASTORE_KEY_ARN,
    TEST_CONFIG,
    actions,
    function_role,
    logical_id,
    resources,
    role_statements,
)

VIA_HEALTHIMAGING = {"StringEquals": {"kms:ViaService": "medical-imaging.${AWS::Region}.amazonaws.com"}}
READ = {"kms:DescribeKey", "kms:Decrypt"}
WRITE = READ | {"kms:GenerateDataKey"}
# The functions that call HealthImaging, and what their calls need of the key.
EXPECTED = {"Prepare": READ, "Submit": WRITE, "AwaitCopy": READ, "ImportPlanner": READ, "DeleteSource": WRITE}


def _key_statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    role = function_role(template, logical_id(template, name, "AWS::Lambda::Function"))
    return [st for st in role_statements(template, role) if st.get("Sid") == "DatastoreKeysThroughHealthImaging"]


def test_exactly_the_healthimaging_callers_get_the_key_through_healthimaging_only(delete_json: dict[str, Any]) -> None:
    for name, wanted in EXPECTED.items():
        [statement] = _key_statements(delete_json, name)
        assert set(actions([statement])) == wanted, name
        assert statement["Resource"] == DATASTORE_KEY_ARN and statement["Condition"] == VIA_HEALTHIMAGING, name
    expected_ids = {logical_id(delete_json, name, "AWS::Lambda::Function") for name in EXPECTED}
    with_key = {
        lid
        for lid in resources(delete_json, "AWS::Lambda::Function")
        if DATASTORE_KEY_ARN in str(role_statements(delete_json, function_role(delete_json, lid)))
    }
    assert with_key == expected_ids  # nobody else: not Pace, Publish, the consumer, the log retention helper...


def test_without_keys_nothing_is_granted(template_json: dict[str, Any]) -> None:
    for name in ("Prepare", "Submit", "AwaitCopy", "ImportPlanner"):
        assert _key_statements(template_json, name) == []


def test_the_setting_takes_key_arns_only() -> None:
    config = config_from_dict({**TEST_CONFIG, "datastoreKmsKeyArns": [DATASTORE_KEY_ARN]})
    assert config.datastore_kms_key_arns == [DATASTORE_KEY_ARN]
    for bad in (["alias/my-key"], [DATASTORE_KEY_ARN, DATASTORE_KEY_ARN], ["*"]):
        with pytest.raises(ConfigError, match="datastoreKmsKeyArns"):
            config_from_dict({**TEST_CONFIG, "datastoreKmsKeyArns": bad})
