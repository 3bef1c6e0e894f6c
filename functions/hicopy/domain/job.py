"""The copy job contract (design §3.1): strict, because a typo must never silently change a medical copy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from hicopy.contract import DATASTORE_ID_PATTERN, DICOM_UID_MAX_LENGTH, DICOM_UID_PATTERN, IMAGE_SET_ID_PATTERN
from hicopy.errors import JobRejected

DatastoreId = Annotated[str, StringConstraints(pattern=DATASTORE_ID_PATTERN)]
ImageSetId = Annotated[str, StringConstraints(pattern=IMAGE_SET_ID_PATTERN)]
# ASCII digits only: in Python (and so in pydantic and jsonschema) \d also matches other scripts' digits ("١٢").
VersionId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
# DICOM UID: dot-separated runs of ASCII digits, at most 64 characters (leading zeros accepted: see hicopy.contract).
DicomUid = Annotated[str, StringConstraints(pattern=DICOM_UID_PATTERN, max_length=DICOM_UID_MAX_LENGTH)]
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
CORRELATION_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"  # printable ASCII, no spaces
JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN)]
CorrelationId = Annotated[str, StringConstraints(pattern=CORRELATION_ID_PATTERN)]

MAX_SELECTION = 100_000  # instances or series named by one job

# The admission lane of a job (``hicopy.domain.admission``): ``interactive`` jobs are admitted ahead of a bulk
# backlog; ``bulk`` (the default for every trigger, the import planner included) waits in the queue behind it.
Priority = Literal["interactive", "bulk"]
DEFAULT_PRIORITY: Priority = "bulk"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SourceRef(StrictModel):
    imageSetId: ImageSetId
    versionId: VersionId | None = None


class DestinationRef(StrictModel):
    imageSetId: ImageSetId | None = None
    versionId: VersionId | None = None

    @model_validator(mode="after")
    def _version_needs_id(self) -> DestinationRef:
        if self.versionId is not None and self.imageSetId is None:
            raise ValueError("destination.versionId needs destination.imageSetId")
        return self


class CopyJob(StrictModel):
    """A copy job as users send it (SQS body, or the ``detail`` of a ``Copy Requested`` event)."""

    jobId: JobId | None = None
    datastoreId: DatastoreId
    source: SourceRef
    destination: DestinationRef | None = None
    instances: Annotated[list[DicomUid], Field(min_length=1, max_length=MAX_SELECTION)] | None = None
    series: Annotated[list[DicomUid], Field(min_length=1, max_length=MAX_SELECTION)] | None = None
    force: bool = False
    promoteToPrimary: bool = False
    correlationId: CorrelationId | None = None
    priority: Annotated[
        Priority,
        Field(
            description="Admission lane: 'interactive' jobs start ahead of a bulk backlog (a one-off copy a person "
            "waits for); 'bulk' (default, also for import-planner jobs) waits in the job queue behind the backlog."
        ),
    ] = DEFAULT_PRIORITY

    @model_validator(mode="after")
    def _consistent(self) -> CopyJob:
        dest_id = self.destination.imageSetId if self.destination else None
        if dest_id is not None and dest_id == self.source.imageSetId:
            raise ValueError("destination.imageSetId must differ from source.imageSetId")
        if self.promoteToPrimary and dest_id is not None:
            raise ValueError("promoteToPrimary copies into a new primary image set: leave destination.imageSetId out")
        for name, values in (("instances", self.instances), ("series", self.series)):
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name} contains duplicate UIDs")
        return self

    @property
    def destination_image_set_id(self) -> str | None:
        return self.destination.imageSetId if self.destination else None

    @property
    def destination_version_id(self) -> str | None:
        return self.destination.versionId if self.destination else None

    @property
    def has_selection(self) -> bool:
        return bool(self.instances or self.series)


TriggerType = Literal["sqs", "event", "import"]


class Trigger(BaseModel):
    """Where a job came from. Extra keys (messageId, eventId, importJobId, ...) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: TriggerType


def format_validation_error(exc: ValidationError, *, limit: int = 5) -> str:
    """One line per problem: ``field.path: what is wrong``; precise enough to fix the job.

    The offending value is never echoed: it may hold PHI put into the wrong field, and the reason travels into logs,
    a DLQ message attribute and an event. The original body is kept whole in the DLQ.
    """
    parts: list[str] = []
    for err in exc.errors()[:limit]:
        loc = ".".join(safe_name(p) for p in err["loc"]) or "(job)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (fields follow the CopyImageSet API casing; see the job schema)"
        parts.append(f"{loc}: {msg}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more problem(s)")
    return "; ".join(parts)


def safe_name(part: Any, limit: int = 64) -> str:
    """A field name or index as printable ASCII (anything else escaped), at most ``limit`` characters."""
    text = "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in str(part))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_job(data: Any) -> CopyJob:
    """Validate a decoded job object; raise ``JobRejected`` with a precise reason."""
    if not isinstance(data, dict):
        raise JobRejected(f"the job must be a JSON object, got {type(data).__name__}")
    try:
        return CopyJob.model_validate(data)
    except ValidationError as exc:
        raise JobRejected(f"invalid copy job: {format_validation_error(exc)}") from exc
