"""The emulator's state: data stores, image sets and their versions, import jobs, timers and pending side effects.

Everything here runs under the emulator's lock; nothing here does I/O. Side effects (events, S3 writes) are queued as
``Effect`` objects in ``Store.outbox`` and carried out by the emulator after it releases the lock.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from offline.healthimaging import errors
from offline.healthimaging.dicom import Metadata, new_resource_id, series_map, study_uid_of

ACTIVE, LOCKED, DELETED = "ACTIVE", "LOCKED", "DELETED"

CopyDuration = float | Callable[[str, str], float]


@dataclass
class Settings:
    """Tunable behaviour (all durations in clock seconds)."""

    copy_duration: CopyDuration = 2.0
    copy_durations: deque[float] = field(default_factory=deque)
    update_duration: float = 0.0
    delete_duration: float = 0.0
    import_duration: float = 0.0
    max_frames_per_copy: int = 1000
    max_concurrent_copies: int = 100
    frame_quota_error: str = "ValidationException"
    first_copy_version: int = 1
    event_id_key: str = "imageSetId"
    source_copy_events: bool = True
    stale_version_error: str = "ResourceNotFoundException"  # or "ConflictException" (see errors.stale_version)
    pad_numbers: bool = True  # IS values of generated metadata padded to even length ("1 "), as real documents
    fail_next_copy: deque[str] = field(default_factory=deque)


@dataclass
class Version:
    version_id: int
    state: str
    status: str
    is_primary: bool
    created_at: float
    updated_at: float
    metadata: Metadata
    message: str | None = None
    forced: bool = False
    deleted_at: float | None = None


@dataclass
class Hold:
    """Why an image set is LOCKED, and what its latest version returns to when the hold ends."""

    reason: str  # copy-source | copy-destination | update | delete | external
    prior_state: str
    prior_status: str


@dataclass
class ImageSet:
    image_set_id: str
    datastore_id: str
    created_at: float
    versions: list[Version] = field(default_factory=list)
    hold: Hold | None = None

    @property
    def latest(self) -> Version:
        return self.versions[-1]

    @property
    def locked(self) -> bool:
        return self.latest.state == LOCKED

    @property
    def deleted(self) -> bool:
        return self.latest.state == DELETED

    def version(self, version_id: int) -> Version | None:
        for candidate in self.versions:
            if candidate.version_id == version_id:
                return candidate
        return None


@dataclass
class Datastore:
    datastore_id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    kms_key_arn: str | None = None
    lossless_storage_format: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    client_token: str | None = None
    image_sets: dict[str, ImageSet] = field(default_factory=dict)


@dataclass
class ImportJob:
    job_id: str
    datastore_id: str
    job_name: str
    status: str
    data_access_role_arn: str
    input_s3_uri: str
    output_s3_uri: str  # the per-job folder: <request prefix><datastoreId>-DicomImport-<jobId>/
    submitted_at: float
    ended_at: float | None = None
    message: str | None = None
    client_token: str | None = None


@dataclass
class PendingCopy:
    datastore_id: str
    source_id: str
    destination_id: str
    destination_version: int
    due: float
    payload: Metadata  # the selected source series/instances
    forced: bool
    new_destination: bool
    failure: str | None  # COPY_FAILED message decided at acceptance, None = will succeed


@dataclass(frozen=True)
class EventEffect:
    detail_type: str
    detail: dict[str, Any]
    resources: list[str]


@dataclass(frozen=True)
class WriteEffect:
    uri: str
    body: bytes
    writer: Callable[[str, bytes], None] | None


Effect = EventEffect | WriteEffect


class Store:
    """In-memory HealthImaging account/region."""

    def __init__(self, account: str, region: str, rng: random.Random, settings: Settings) -> None:
        self.account = account
        self.region = region
        self.rng = rng
        self.settings = settings
        self.datastores: dict[str, Datastore] = {}
        self.jobs: dict[str, ImportJob] = {}
        self.pending_copies: dict[tuple[str, str], PendingCopy] = {}  # (datastore, destination id) -> copy
        self.outbox: deque[Effect] = deque()
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()

    # ------------------------------------------------------------------------------------------------ time

    def at(self, due: float, action: Callable[[float], None]) -> None:
        """Run ``action(due)`` once the clock reaches ``due`` (on the next ``advance``)."""
        heapq.heappush(self._timers, (due, next(self._seq), action))

    def advance(self, now: float) -> int:
        """Run every timer that is due by ``now`` (in due order). Returns how many ran."""
        ran = 0
        while self._timers and self._timers[0][0] <= now:
            due, _, action = heapq.heappop(self._timers)
            action(due)
            ran += 1
        return ran

    def pending(self) -> int:
        return len(self._timers)

    def next_due(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    # ------------------------------------------------------------------------------------------------ ids, ARNs

    def new_id(self) -> str:
        return new_resource_id(self.rng)

    def datastore_arn(self, datastore_id: str) -> str:
        return f"arn:aws:medical-imaging:{self.region}:{self.account}:datastore/{datastore_id}"

    def image_set_arn(self, datastore_id: str, image_set_id: str) -> str:
        return f"{self.datastore_arn(datastore_id)}/imageset/{image_set_id}"

    # ------------------------------------------------------------------------------------------------ lookups

    def datastore(self, datastore_id: str) -> Datastore:
        store = self.datastores.get(datastore_id)
        if store is None or store.status == DELETED:
            raise errors.not_found(f"Datastore {datastore_id} does not exist")
        return store

    def active_datastore(self, datastore_id: str) -> Datastore:
        store = self.datastore(datastore_id)
        if store.status != ACTIVE:
            raise errors.conflict(f"Datastore {datastore_id} is {store.status}")
        return store

    def image_set(self, datastore_id: str, image_set_id: str, *, allow_deleted: bool = False) -> ImageSet:
        found = self.datastore(datastore_id).image_sets.get(image_set_id)
        if found is None or (found.deleted and not allow_deleted):
            raise errors.not_found(f"Image set {image_set_id} does not exist in datastore {datastore_id}")
        return found

    def primary_for(self, datastore_id: str, study_uid: str | None, series_uid: str) -> ImageSet | None:
        """The live primary image set holding ``series_uid`` of ``study_uid`` in the data store, if any."""
        for candidate in self.datastore(datastore_id).image_sets.values():
            latest = candidate.latest
            if candidate.deleted or not latest.is_primary:
                continue
            if study_uid_of(latest.metadata) == study_uid and series_uid in series_map(latest.metadata):
                return candidate
        return None

    # ------------------------------------------------------------------------------------------------ mutations

    def new_image_set(
        self,
        datastore_id: str,
        metadata: Metadata,
        *,
        now: float,
        is_primary: bool,
        state: str,
        status: str,
        version_id: int = 1,
        forced: bool = False,
        image_set_id: str | None = None,
    ) -> ImageSet:
        """A new image set (id generated unless ``image_set_id``, which must be unused in the data store)."""
        store = self.datastore(datastore_id)
        if image_set_id is not None and image_set_id in store.image_sets:
            raise ValueError(f"image set {image_set_id} already exists in datastore {datastore_id}")
        while image_set_id is None or image_set_id in store.image_sets:
            image_set_id = self.new_id()
        content = copy.deepcopy(metadata)
        content["DatastoreID"], content["ImageSetID"] = datastore_id, image_set_id
        created = ImageSet(image_set_id, datastore_id, now)
        created.versions.append(Version(version_id, state, status, is_primary, now, now, content, forced=forced))
        store.image_sets[image_set_id] = created
        return created

    def new_version(
        self,
        image_set: ImageSet,
        metadata: Metadata,
        *,
        now: float,
        state: str,
        status: str,
        is_primary: bool | None = None,
        forced: bool = False,
    ) -> Version:
        content = copy.deepcopy(metadata)
        content["DatastoreID"], content["ImageSetID"] = image_set.datastore_id, image_set.image_set_id
        primary = image_set.latest.is_primary if is_primary is None else is_primary
        version = Version(image_set.latest.version_id + 1, state, status, primary, now, now, content, forced=forced)
        image_set.versions.append(version)
        return version

    def hold(self, image_set: ImageSet, reason: str, status: str, now: float) -> None:
        """Lock the image set (its latest version goes LOCKED/``status``), remembering what to return to."""
        latest = image_set.latest
        image_set.hold = Hold(reason, latest.state, latest.status)
        latest.state, latest.status, latest.updated_at = LOCKED, status, now

    def release(self, image_set: ImageSet, now: float, status: str | None = None) -> None:
        """End a hold: ACTIVE with ``status`` (default: the status before the hold)."""
        hold = image_set.hold
        latest = image_set.latest
        latest.state = hold.prior_state if hold else ACTIVE
        latest.status = status or (hold.prior_status if hold else latest.status)
        latest.updated_at = now
        image_set.hold = None

    def emit(self, effect: Effect) -> None:
        self.outbox.append(effect)
