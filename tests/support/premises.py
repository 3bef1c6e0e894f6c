"""The premises about HealthImaging that nobody has checked against the real service, and one probe per premise.

A probe asks the service one question through a ``medical-imaging`` client and returns the answer as plain JSON. The
same probe runs on the emulator (``tests/emulator/test_premises.py``) and on real AWS (``tests/aws``, ``make
test-aws``), which writes the real answers into ``tests/data/healthimaging/premises.json``; for every premise marked
verified there, the emulator must answer the same. Until someone runs ``make test-aws``, every premise is
"unverified" and the emulator's answer is our assumption (the "assumed" field says which one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

PREMISES_FILE = Path(__file__).resolve().parents[1] / "data" / "healthimaging" / "premises.json"
UNVERIFIED = "unverified"


@dataclass
class Made:
    """An image set a probe world made (seeded in the emulator, imported in AWS)."""

    image_set_id: str
    version_id: str
    study_uid: str
    series_uids: list[str]
    instances: dict[str, list[str]] = field(default_factory=dict)  # Series Instance UID -> SOP Instance UIDs


class World(Protocol):
    """Where a probe runs: the emulator or a real account."""

    mi: Any  # a medical-imaging client
    datastore_id: str

    def make(self, *, series: int = 1, instances: int = 2, study_of: Made | None = None) -> Made:
        """A new primary image set (in the study of ``study_of`` when given, with new Series)."""
        ...

    def make_non_primary(self, like: Made) -> Made:
        """A non-primary image set: ``like``'s Series again, with a conflicting Patient-level attribute."""
        ...

    def settle(self, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
        """GetImageSet once the image set (version) is no longer LOCKED."""
        ...

    def image_set_event_details(self) -> list[dict[str, Any]]:
        """The ``detail`` of every HealthImaging image-set event seen so far."""
        ...


def _error(exc: ClientError) -> dict[str, Any]:
    return {
        "code": exc.response["Error"].get("Code"),
        "status": exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        "message": exc.response["Error"].get("Message"),
    }


def _copy(world: World, source: Made, *, destination: Made | None = None, copiable: str | None = None) -> Any:
    info: dict[str, Any] = {"sourceImageSet": {"latestVersionId": source.version_id}}
    if copiable is not None:
        info["sourceImageSet"]["DICOMCopies"] = {"copiableAttributes": copiable}
    if destination is not None:
        target = {"imageSetId": destination.image_set_id, "latestVersionId": destination.version_id}
        info["destinationImageSet"] = target
    return world.mi.copy_image_set(
        datastoreId=world.datastore_id, sourceImageSetId=source.image_set_id, copyImageSetInformation=info
    )


def _subset(series_uid: str, sop_uids: list[str]) -> str:
    instances = {uid: {} for uid in sop_uids}
    return json.dumps({"SchemaVersion": "1.1", "Study": {"Series": {series_uid: {"Instances": instances}}}})


# --- the probes ----------------------------------------------------------------------------------------------------
def stale_version_copy(world: World) -> Any:
    source = world.make()
    stale = Made(source.image_set_id, str(int(source.version_id) + 5), source.study_uid, source.series_uids)
    try:
        _copy(world, stale)
    except ClientError as exc:
        found = _error(exc)
        return {"code": found["code"], "status": found["status"]}
    return {"code": None, "status": 200}


def stale_version_update(world: World) -> Any:
    made = world.make()
    updates = json.dumps({"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "probe"}}}).encode()
    try:
        world.mi.update_image_set_metadata(
            datastoreId=world.datastore_id,
            imageSetId=made.image_set_id,
            latestVersionId=str(int(made.version_id) + 5),
            updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": updates}},
        )
    except ClientError as exc:
        return _error(exc)
    return {"code": None, "status": 200, "message": None}


def search_series_and_primary_together(world: World) -> Any:
    made = world.make()
    filters = [
        {"values": [{"DICOMSeriesInstanceUID": made.series_uids[0]}], "operator": "EQUAL"},
        {"values": [{"isPrimary": True}], "operator": "EQUAL"},
    ]
    try:
        found = world.mi.search_image_sets(datastoreId=world.datastore_id, searchCriteria={"filters": filters})
    except ClientError as exc:
        return {"accepted": False, "code": _error(exc)["code"]}
    ids = [s["imageSetId"] for s in found.get("imageSetsMetadataSummaries", [])]
    return {"accepted": True, "found": made.image_set_id in ids}


def copy_into_destination_lacking_the_series(world: World) -> Any:
    source = world.make(instances=2)
    destination = world.make(study_of=source)  # same Patient and Study, other Series
    series = source.series_uids[0]
    try:
        started = _copy(world, source, destination=destination, copiable=_subset(series, source.instances[series][:1]))
    except ClientError as exc:
        return {"atCall": _error(exc)["code"], "status": None, "seriesMismatch": None}
    version = started["destinationImageSetProperties"]["latestVersionId"]
    final = world.settle(destination.image_set_id, version)
    message = final.get("message") or ""
    return {"atCall": None, "status": final.get("imageSetWorkflowStatus"), "seriesMismatch": "don't match" in message}


def search_returns_non_primary(world: World) -> Any:
    primary = world.make()
    other = world.make_non_primary(primary)
    filters = [{"values": [{"DICOMSeriesInstanceUID": primary.series_uids[0]}], "operator": "EQUAL"}]
    found = world.mi.search_image_sets(datastoreId=world.datastore_id, searchCriteria={"filters": filters})
    ids = [s["imageSetId"] for s in found.get("imageSetsMetadataSummaries", [])]
    return {"primary": primary.image_set_id in ids, "nonPrimary": other.image_set_id in ids}


def search_returns_locked(world: World) -> Any:
    source = world.make()
    _copy(world, source)  # the source is LOCKED (COPYING_WITH_READ_ONLY_ACCESS) while the copy runs
    state = world.mi.get_image_set(datastoreId=world.datastore_id, imageSetId=source.image_set_id)["imageSetState"]
    filters = [{"values": [{"DICOMSeriesInstanceUID": source.series_uids[0]}], "operator": "EQUAL"}]
    found = world.mi.search_image_sets(datastoreId=world.datastore_id, searchCriteria={"filters": filters})
    ids = [s["imageSetId"] for s in found.get("imageSetsMetadataSummaries", [])]
    world.settle(source.image_set_id)
    # None: the copy was over before the search (the question stays open for that run).
    return {"lockedReturned": (source.image_set_id in ids) if state == "LOCKED" else None}


def invalid_copiable_attributes(world: World) -> Any:
    source = world.make()
    copiable = _subset(source.series_uids[0], ["1.2.3.999999999.1"])  # a SOP Instance UID the source lacks
    try:
        started = _copy(world, source, copiable=copiable)
    except ClientError as exc:
        return {"atCall": _error(exc)["code"], "status": None}
    made = started["destinationImageSetProperties"]
    final = world.settle(made["imageSetId"], made["latestVersionId"])
    return {"atCall": None, "status": final.get("imageSetWorkflowStatus")}


def first_version_of_a_copy_made_image_set(world: World) -> Any:
    source = world.make()
    started = _copy(world, source)
    made = started["destinationImageSetProperties"]
    world.settle(made["imageSetId"], made["latestVersionId"])
    return {"latestVersionId": made["latestVersionId"]}


def image_set_event_id_key(world: World) -> Any:
    source = world.make()
    made = _copy(world, source)["destinationImageSetProperties"]
    world.settle(made["imageSetId"], made["latestVersionId"])
    keys = {k for detail in world.image_set_event_details() for k in detail if k.lower() == "imagesetid"}
    return {"keys": sorted(keys)}


@dataclass(frozen=True)
class Premise:
    id: str
    question: str
    rests_on_it: str
    probe: Callable[[World], Any]
    costly: bool = False


PREMISES: tuple[Premise, ...] = (
    Premise(
        "stale-version-copy",
        "What CopyImageSet answers to a stale source latestVersionId (404 'is not the latest' or 409)",
        "the adapter edge treats both as a version race (hicopy.adapters.edge)",
        stale_version_copy,
    ),
    Premise(
        "stale-version-update",
        "What UpdateImageSetMetadata answers to a stale latestVersionId (grand-challenge's production code: 404)",
        "the emulator's default stale_version_error",
        stale_version_update,
    ),
    Premise(
        "search-series-and-primary",
        "Whether SearchImageSets accepts DICOMSeriesInstanceUID and isPrimary together (only updatedAt + "
        "DICOMSeriesInstanceUID is a documented pair)",
        "the import planner's primary_for_series",
        search_series_and_primary_together,
    ),
    Premise(
        "copy-into-destination-lacking-series",
        "Whether a subset copy into a destination lacking the Series fails 'Series ... don't match', and when",
        "the chunking design: the first chunk opens every Series",
        copy_into_destination_lacking_the_series,
    ),
    Premise(
        "search-returns-non-primary",
        "Whether SearchImageSets returns non-primary image sets",
        "Submit's reconciliation and the planner's search",
        search_returns_non_primary,
    ),
    Premise(
        "search-returns-locked",
        "Whether SearchImageSets returns an image set while it is LOCKED",
        "Submit's reconciliation (copies_created_since)",
        search_returns_locked,
    ),
    Premise(
        "invalid-copiable-attributes",
        "Whether copiableAttributes naming an absent SOP Instance UID fail at the call or as COPY_FAILED",
        "AwaitCopy's COPY_FAILED path vs the adapter's InvalidRequest",
        invalid_copiable_attributes,
    ),
    Premise(
        "first-version-of-copy",
        "The latestVersionId of an image set a copy creates ('1' in the JS example's capture, '2' in the CLI's)",
        "the emulator's first_copy_version; reconciliation of a new destination",
        first_version_of_a_copy_made_image_set,
    ),
    Premise(
        "image-set-event-id-key",
        "The image set ID key in HealthImaging's image-set events: imageSetId (captured event) or imagesetId (guide)",
        "the emulator's event_id_key; anything that reads those events",
        image_set_event_id_key,
    ),
)
BY_ID = {premise.id: premise for premise in PREMISES}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PREMISES_FILE.read_text())
    return data


def record(premise_id: str, answer: Any, *, region: str) -> None:
    """Write the real service's answer (``make test-aws``): the premise becomes verified."""
    data = load()
    data["premises"][premise_id].update(
        {"status": "verified", "answer": answer, "region": region, "checkedAt": datetime.now(UTC).isoformat()}
    )
    PREMISES_FILE.write_text(json.dumps(data, indent=2) + "\n")


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(interval)
