"""The environment of each function: the contract between the stack and the handlers.

The stack builds each function's environment from the model its handler loads, with :func:`environment` (a
missing key or a key the model does not have fails the synth); the handler validates it with :func:`load`, once
per cold start (on first use, never at import time). No field has a default: the deploy-time defaults live in
``infra.config`` and the stack passes every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hicopy.contract import DATASTORE_ID_PATTERN, Policy
from hicopy.errors import ConfigurationError


class _Env(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ObservabilityEnv(_Env):
    """Read by Powertools itself, the same for every function (the handlers never load it)."""

    POWERTOOLS_SERVICE_NAME: Annotated[str, Field(min_length=1)]
    POWERTOOLS_METRICS_NAMESPACE: Annotated[str, Field(min_length=1)]
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    # Payloads are PHI-adjacent: never log events or put responses into X-Ray metadata.
    POWERTOOLS_LOGGER_LOG_EVENT: Literal["false"]
    POWERTOOLS_TRACER_CAPTURE_RESPONSE: Literal["false"]


class DatastoreEnv(_Env):
    DATASTORE_IDS: str

    @field_validator("DATASTORE_IDS")
    @classmethod
    def _ids(cls, value: str) -> str:
        ids = [v for v in value.split(",") if v]
        bad = [v for v in ids if not re.fullmatch(DATASTORE_ID_PATTERN, v)]
        if not ids or bad:
            raise ValueError(f"must be a comma-separated list of 32-character data store IDs (bad: {bad or value!r})")
        return value

    @property
    def datastore_ids(self) -> frozenset[str]:
        return frozenset(v for v in self.DATASTORE_IDS.split(",") if v)


class BusEnv(_Env):
    EVENT_BUS_NAME: Annotated[str, Field(min_length=1)]
    EVENT_SOURCE: Annotated[str, Field(min_length=1)]


class PrepareEnv(DatastoreEnv):
    MAX_FRAMES_PER_COPY: Annotated[int, Field(ge=1, le=100_000)]


class PaceEnv(_Env):
    """Every paced function: Pace reserves slots, Submit and DeleteSource take their turn right before calling."""

    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]
    COPY_RATE_PER_SECOND: Annotated[float, Field(gt=0)]
    COPY_BURST: Annotated[int, Field(ge=1)]


class PaceTaskEnv(PaceEnv):
    """The Pace task: it also refuses slots beyond the execution's deadline (its start plus this timeout)."""

    EXECUTION_TIMEOUT_SECONDS: Annotated[int, Field(ge=60)]


class ReceiptWindowEnv(_Env):
    """How long a put whose answer was lost waits for its delivery receipt (``hicopy.domain.delivery``)."""

    RECEIPT_WINDOW_SECONDS: Annotated[int, Field(ge=1)]


class ConsumerEnv(DatastoreEnv, BusEnv, PaceEnv, ReceiptWindowEnv):
    """The consumer reads the pacing schedule's horizon (admission) and sends deferred jobs back to its queue."""

    STATE_MACHINE_ARN: Annotated[str, Field(pattern=r"^arn:[^:]+:states:")]
    REJECTED_QUEUE_URL: Annotated[str, Field(min_length=1)]
    JOB_QUEUE_URL: Annotated[str, Field(min_length=1)]  # deferred jobs; a failed rejection comes back later


class PublishEnv(BusEnv, ReceiptWindowEnv):
    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]


class ReceiptEnv(_Env):
    """The receipt function: records the delivery receipts of our own events (``hicopy.domain.delivery``)."""

    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]


class AwaitEnv(_Env):
    """AwaitCopy's schedule of status checks (``hicopy.domain.backoff.Backoff``), from the ``polling`` config."""

    POLL_FIRST_INTERVAL_SECONDS: Annotated[int, Field(ge=1)]
    POLL_BACKOFF_RATE: Annotated[float, Field(ge=1)]
    POLL_MAX_DELAY_SECONDS: Annotated[int, Field(ge=1)]
    POLL_MAX_ATTEMPTS: Annotated[int, Field(ge=1)]
    # While copy events of the data store flow (one heard within EVENTS_WINDOW_SECONDS), each wait is this long.
    EVENT_WAIT_SECONDS: Annotated[int, Field(ge=0)]
    EVENTS_WINDOW_SECONDS: Annotated[int, Field(ge=0)]
    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]


class WakerEnv(DatastoreEnv):
    """The copy waker: HealthImaging's copy events in, waiting executions woken (``hicopy.domain.waking``)."""

    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]


class PlannerEnv(DatastoreEnv, BusEnv):
    JOB_QUEUE_URL: Annotated[str, Field(min_length=1)]
    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]
    POST_IMPORT_POLICY: Policy
    MANIFEST_WAIT_SECONDS: Annotated[float, Field(ge=0, le=600)]
    CONSOLIDATE_FORCE: bool
    DELETE_AFTER_CONSOLIDATE: bool
    IMPORT_REPORT_DETAILS: bool  # Import Job Failures lists failed files' names and the service's messages


E = TypeVar("E", bound=_Env)
# What the stack passes: strings (CDK tokens included), numbers, booleans, lists (comma-separated).
EnvValue = str | int | float | bool | Sequence[str]


class EnvironmentMismatch(ValueError):
    """The values given for a function's environment are not exactly the keys of its settings model."""


@cache
def load(model: type[E]) -> E:
    """Read and validate ``model`` from ``os.environ`` (cached: once per cold start)."""
    try:
        return model.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid environment for {model.__name__}: {problems}") from exc


def environment(model: type[BaseModel], values: Mapping[str, EnvValue]) -> dict[str, str]:
    """The environment variables that :func:`load` reads as ``model``: every key of the model, no other.

    Booleans become ``true``/``false`` and lists ``a,b`` (how the model parses them); strings pass unchanged.
    """
    missing = sorted(set(model.model_fields) - set(values))
    unknown = sorted(set(values) - set(model.model_fields))
    if missing or unknown:
        raise EnvironmentMismatch(f"{model.__name__}: missing {missing}, not in the model {unknown}")
    return {key: _text(value) for key, value in values.items()}


def _text(value: EnvValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return ",".join(value)
