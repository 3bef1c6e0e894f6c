"""The deployment configuration: cdk.json context key ``hicopy``, validated at synth time.

Sources, later ones win:

1. the ``hicopy`` object in cdk.json's ``context`` (or ``build_app(context={"hicopy": {...}})``);
2. one CLI override per top-level key: ``cdk synth -c hicopy:datastoreIds=<id>,<id> -c hicopy:copyBurst=2``
   (lists are comma-separated or JSON, objects are JSON; ``polling`` also takes
   ``-c hicopy:polling.maxWaitSeconds=600``).

Every problem is reported as a :class:`ConfigError` naming the key, the bad value and the rule.

This module is the one home of the deploy-time defaults: cdk.json ships none, and the Lambda settings models
(``hicopy.settings``) have none either, because the stack passes every key.

In Python (a CDK app of your own, see :class:`infra.orchestrator.CopyOrchestrator`) the model takes the snake_case
attribute names: ``HicopyConfig(datastore_ids=[...], copy_burst=2)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from hicopy.contract import DATASTORE_ID_PATTERN, Policy
from hicopy.domain.backoff import OUTAGE_TOLERANCE_SECONDS, PUBLISH_EXPECTED_WAIT_FACTOR
from hicopy.domain.delivery import RECEIPT_WINDOW_SECONDS

CONTEXT_KEY = "hicopy"

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
KMS_KEY_ARN_PATTERN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$"
EVENT_BUS_NAME_PATTERN = r"^[/.\-_A-Za-z0-9]{1,256}$"
EVENT_SOURCE_PATTERN = r"^[A-Za-z0-9._\-/]{1,256}$"
STACK_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,127}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# The values CloudWatch Logs accepts for RetentionInDays.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545),
    *(731, 1096, 1827, 2192, 2557, 2922, 3288, 3653),
)

HOW_TO_SET_DATASTORES = (
    "set it with `cdk synth -c hicopy:datastoreIds=<id>[,<id>...]` (also for deploy), "
    'or add "datastoreIds": ["<id>", ...] to the "hicopy" object under "context" in cdk.json'
)

DatastoreId = Annotated[str, StringConstraints(pattern=DATASTORE_ID_PATTERN)]
BucketName = Annotated[str, StringConstraints(pattern=BUCKET_PATTERN)]
KmsKeyArn = Annotated[str, StringConstraints(pattern=KMS_KEY_ARN_PATTERN)]


class ConfigError(ValueError):
    """The ``hicopy`` configuration is invalid. The message lists every problem, one per line."""


class _Model(BaseModel):
    # camelCase keys in cdk.json and -c (load_config validates by alias only); snake_case names in Python.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True, validate_default=True
    )


class PollingConfig(_Model):
    """AwaitCopy's waits between status checks (``hicopy.domain.backoff.Backoff``): backoff with full jitter, or long
    waits ended by HealthImaging's copy events while they flow; the budget is maxWaitSeconds (expected)."""

    first_interval_seconds: int = Field(default=5, ge=1, le=3600)
    backoff_rate: float = Field(default=2.0, ge=1.0, le=10.0)
    max_delay_seconds: int = Field(default=120, ge=1, le=86_400)
    max_wait_seconds: int = Field(default=43_200, ge=1, le=31_536_000)
    # While HealthImaging's copy events of the data store flow (one heard within eventsWindowSeconds), each wait
    # lasts eventWaitSeconds and the copy event ends it (0: always poll). A lost event then costs at most this long.
    event_wait_seconds: int = Field(default=90, ge=0, le=3600)
    events_window_seconds: int = Field(default=900, ge=60, le=86_400)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.event_wait_seconds > self.max_wait_seconds:
            raise ValueError(
                f"polling.eventWaitSeconds ({self.event_wait_seconds}) must be <= "
                f"polling.maxWaitSeconds ({self.max_wait_seconds})"
            )
        if self.max_delay_seconds < self.first_interval_seconds:
            raise ValueError(
                f"polling.maxDelaySeconds ({self.max_delay_seconds}) must be >= "
                f"polling.firstIntervalSeconds ({self.first_interval_seconds})"
            )
        if self.max_wait_seconds < self.first_interval_seconds:
            raise ValueError(
                f"polling.maxWaitSeconds ({self.max_wait_seconds}) must be >= "
                f"polling.firstIntervalSeconds ({self.first_interval_seconds})"
            )
        return self


class HicopyConfig(_Model):
    """Validated configuration. Attribute names are snake_case; the JSON keys are camelCase."""

    datastore_ids: list[DatastoreId] = Field(min_length=1, max_length=50)
    # The customer-managed KMS keys of the data stores (none: AWS owned keys, nothing to grant).
    datastore_kms_key_arns: list[KmsKeyArn] = Field(default_factory=list, max_length=50)
    import_output_buckets: list[BucketName] = Field(default_factory=list)
    import_output_kms_key_arns: list[KmsKeyArn] = Field(default_factory=list)
    post_import_policy: Policy = "none"
    consolidate_force: bool = False
    delete_after_consolidate: bool = False
    import_report_details: bool = False
    copy_rate_per_second: float = Field(default=0.25, gt=0, le=100)
    copy_burst: int = Field(default=1, ge=1, le=1000)
    max_frames_per_copy: int = Field(default=1000, ge=1, le=100_000)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    event_source: str = Field(default="hicopy.orchestrator", pattern=EVENT_SOURCE_PATTERN)
    event_bus_name: str = Field(default="hicopy-events", pattern=EVENT_BUS_NAME_PATTERN)
    archive_retention_days: int = Field(default=30, ge=1, le=3650)
    alarm_email: str | None = Field(default=None, pattern=EMAIL_PATTERN)
    consumer_max_concurrency: int = Field(default=2, ge=2, le=1000)
    # How long a put whose PutEvents answer was lost waits for its delivery receipt (hicopy.domain.delivery).
    receipt_window_seconds: int = Field(default=RECEIPT_WINDOW_SECONDS, ge=10, le=3600)
    log_retention_days: int = 365
    log_execution_data: bool = False
    execution_timeout_hours: int = Field(default=48, ge=1, le=8760)
    stack_name: str = Field(default="HealthImagingCopyOrchestrator", pattern=STACK_NAME_PATTERN)

    @field_validator("datastore_ids", "datastore_kms_key_arns", "import_output_buckets", "import_output_kms_key_arns")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        duplicates = sorted({v for v in value if value.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate entries {duplicates}")
        return value

    @field_validator("event_bus_name")
    @classmethod
    def _not_default_bus(cls, value: str) -> str:
        if value == "default":
            raise ValueError("the orchestrator needs its own bus; 'default' is the account's default bus")
        return value

    @field_validator("event_source")
    @classmethod
    def _not_aws_source(cls, value: str) -> str:
        if value.startswith("aws."):
            raise ValueError("sources starting with 'aws.' are reserved for AWS services (PutEvents rejects them)")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of the CloudWatch Logs retention values {list(LOG_RETENTION_DAYS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.post_import_policy != "none" and not self.import_output_buckets:
            raise ValueError(
                f"importOutputBuckets must name the DICOM import output bucket(s) when postImportPolicy is "
                f"'{self.post_import_policy}' (the planner reads job-output-manifest.json there)"
            )
        if self.delete_after_consolidate and self.post_import_policy == "none":
            raise ValueError(
                "deleteAfterConsolidate=true requires postImportPolicy 'consolidate' or 'promote' "
                "(only planned post-import jobs delete their source)"
            )
        if self.polling.max_wait_seconds >= self.execution_timeout_hours * 3600:
            raise ValueError(
                f"polling.maxWaitSeconds ({self.polling.max_wait_seconds}) must be shorter than "
                f"executionTimeoutHours ({self.execution_timeout_hours} h = {self.execution_timeout_hours * 3600} s)"
            )
        # The longest expected wait of an execution: the status polling, then a Publish riding out an outage.
        publish_wait = int(OUTAGE_TOLERANCE_SECONDS * PUBLISH_EXPECTED_WAIT_FACTOR)
        if self.polling.max_wait_seconds + publish_wait >= self.execution_timeout_hours * 3600:
            raise ValueError(
                f"executionTimeoutHours ({self.execution_timeout_hours} h) must exceed polling.maxWaitSeconds "
                f"({self.polling.max_wait_seconds} s) plus the Publish retries' expected wait ({publish_wait} s, "
                "an EventBridge outage of 2 h ridden out)"
            )
        return self


_LIST_KEYS = {"datastoreIds", "datastoreKmsKeyArns", "importOutputBuckets", "importOutputKmsKeyArns"}
_OBJECT_KEYS = {"polling"}


def _cli_value(key: str, raw: Any) -> Any:
    """Parse one ``-c hicopy:<key>=<value>`` override (the CLI passes strings)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if key in _LIST_KEYS:
        if text.startswith("["):
            return _json(f"hicopy:{key}", text)
        return [part.strip() for part in text.split(",") if part.strip()]
    if key in _OBJECT_KEYS:
        return _json(f"hicopy:{key}", text)
    if key == "alarmEmail" and text.lower() in {"", "null", "none"}:
        return None
    return text


def _json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Invalid hicopy configuration:\n  - {key}: not valid JSON ({exc.msg}): {text!r}") from None


def raw_config(get_context: Callable[[str], Any]) -> dict[str, Any]:
    """Merge the ``hicopy`` context object with the ``hicopy:<key>`` CLI overrides (not validated yet)."""
    base = get_context(CONTEXT_KEY)
    if base is None:
        base = {}
    if isinstance(base, str):
        base = _json(CONTEXT_KEY, base)
    if not isinstance(base, Mapping):
        raise ConfigError(f"Invalid hicopy configuration:\n  - hicopy: must be a JSON object, got {base!r}")
    merged: dict[str, Any] = dict(base)
    for name, field in HicopyConfig.model_fields.items():
        key = field.alias or name
        override = get_context(f"{CONTEXT_KEY}:{key}")
        if override is not None:
            merged[key] = _cli_value(key, override)
    for name, field in PollingConfig.model_fields.items():
        key = field.alias or name
        override = get_context(f"{CONTEXT_KEY}:polling.{key}")
        if override is not None:
            polling = merged.get("polling") or {}
            if not isinstance(polling, Mapping):
                raise ConfigError(f"Invalid hicopy configuration:\n  - polling: must be a JSON object, got {polling!r}")
            merged["polling"] = {**polling, key: override}
    return merged


def _location(loc: tuple[int | str, ...]) -> str:
    out = "hicopy"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        where = _location(tuple(err["loc"]))
        if err["type"] == "missing" and where == "hicopy.datastoreIds":
            lines.append(
                f"  - hicopy.datastoreIds is required (the HealthImaging data store ids): {HOW_TO_SET_DATASTORES}"
            )
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch" and "datastoreIds" in where:
            message = "not a HealthImaging data store id (32 characters [0-9a-z])"
        elif err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; keys are camelCase)"
        got = "" if err["type"] in {"missing", "extra_forbidden"} or not err["loc"] else f" (got {err['input']!r})"
        if not err["loc"]:  # a model-level rule: the message already names the keys
            where = "hicopy"
        lines.append(f"  - {where}: {message}{got}")
    return "Invalid hicopy configuration (cdk.json context 'hicopy' or -c hicopy:<key>=<value>):\n" + "\n".join(lines)


def load_config(get_context: Callable[[str], Any]) -> HicopyConfig:
    """Read and validate the configuration; ``get_context`` is e.g. ``app.node.try_get_context``."""
    raw = raw_config(get_context)
    try:
        return HicopyConfig.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


def config_from_dict(data: Mapping[str, Any]) -> HicopyConfig:
    """Validate a plain ``hicopy`` object (tests, the offline runtime)."""
    return load_config(lambda key: dict(data) if key == CONTEXT_KEY else None)
