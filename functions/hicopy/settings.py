"""Environment of each function, validated once per cold start (on first use, never at import time)."""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hicopy.errors import ConfigurationError

_DATASTORE_ID = r"^[0-9a-z]{32}$"


class _Env(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DatastoreEnv(_Env):
    DATASTORE_IDS: str

    @field_validator("DATASTORE_IDS")
    @classmethod
    def _ids(cls, value: str) -> str:
        import re

        ids = [v for v in value.split(",") if v]
        bad = [v for v in ids if not re.fullmatch(_DATASTORE_ID, v)]
        if not ids or bad:
            raise ValueError(f"must be a comma-separated list of 32-character data store IDs (bad: {bad or value!r})")
        return value

    @property
    def datastore_ids(self) -> frozenset[str]:
        return frozenset(v for v in self.DATASTORE_IDS.split(",") if v)


class BusEnv(_Env):
    EVENT_BUS_NAME: Annotated[str, Field(min_length=1)]
    EVENT_SOURCE: Annotated[str, Field(min_length=1)]


class ConsumerEnv(DatastoreEnv, BusEnv):
    STATE_MACHINE_ARN: Annotated[str, Field(pattern=r"^arn:[^:]+:states:")]
    REJECTED_QUEUE_URL: Annotated[str, Field(min_length=1)]


class PrepareEnv(DatastoreEnv):
    MAX_FRAMES_PER_COPY: Annotated[int, Field(ge=1, le=100_000)] = 1000


class PaceEnv(_Env):
    """Every paced function: Pace reserves slots, Submit and DeleteSource take their turn right before calling."""

    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]
    COPY_RATE_PER_SECOND: Annotated[float, Field(gt=0)] = 0.25
    COPY_BURST: Annotated[int, Field(ge=1)] = 1


class PublishEnv(BusEnv):
    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]


class PlannerEnv(DatastoreEnv, BusEnv):
    JOB_QUEUE_URL: Annotated[str, Field(min_length=1)]
    STATE_TABLE_NAME: Annotated[str, Field(min_length=1)]
    POST_IMPORT_POLICY: Literal["none", "consolidate", "promote"] = "none"
    MANIFEST_WAIT_SECONDS: Annotated[float, Field(ge=0, le=600)] = 120
    CONSOLIDATE_FORCE: bool = False
    DELETE_AFTER_CONSOLIDATE: bool = False


E = TypeVar("E", bound=_Env)


@cache
def load(model: type[E]) -> E:
    """Read and validate ``model`` from ``os.environ`` (cached: once per cold start)."""
    try:
        return model.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid environment for {model.__name__}: {problems}") from exc
