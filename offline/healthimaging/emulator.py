"""``HealthImagingEmulator``: the facade tests and the offline runtime use (see the package docstring)."""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hicopy.clock import Clock, get_clock
from hicopy.contract import DATASTORE_ID_PATTERN
from offline.healthimaging import errors, model
from offline.healthimaging.delivery import EventDelivery
from offline.healthimaging.dicom import build_metadata
from offline.healthimaging.events import emit_image_set_event
from offline.healthimaging.hook import Hook, install_hook, uninstall_hook
from offline.healthimaging.importer import ImportPlan, ImportSource, Writer, new_job, run_import
from offline.healthimaging.operations import OPERATIONS, Context
from offline.healthimaging.seeding import MetadataDocument, SeededImageSet, describe, load_metadata, seed
from offline.healthimaging.store import ACTIVE, CopyDuration, Datastore, EventEffect, Settings, Store, WriteEffect
from offline.healthimaging.throttling import DEFAULT_THROTTLES, TokenBucket

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any], list[str]], None]


class EmulatorBug(AssertionError):
    """The emulator built a response that does not fit botocore's output shape (strict mode)."""


@dataclass(frozen=True)
class CallRecord:
    operation: str
    params: dict[str, Any]
    status_code: int
    error_code: str | None
    at: float  # clock time of the call


@dataclass(frozen=True)
class EmittedEvent:
    detail_type: str
    detail: dict[str, Any]
    resources: list[str]
    at: float
    delivered: bool = True  # False: dropped (``event_drop_fraction``)


class HealthImagingEmulator:
    """An in-process AWS HealthImaging for one account and region."""

    def __init__(
        self,
        clock: Clock | None = None,
        account: str = "123456789012",
        region: str = "us-east-1",
        copy_duration: CopyDuration = 2.0,
        event_sink: EventSink | None = None,
        *,
        throttling: bool = True,
        throttle_rates: Mapping[str, tuple[float, float]] | None = None,
        max_frames_per_copy: int = 1000,
        max_concurrent_copies: int = 100,
        frame_quota_error: str = "ValidationException",
        event_id_key: str = "imageSetId",
        source_copy_events: bool = True,
        stale_version_error: str = "ResourceNotFoundException",
        pad_numbers: bool = True,
        first_copy_version: int = 1,
        update_duration: float = 0.0,
        delete_duration: float = 0.0,
        import_duration: float = 0.0,
        event_delivery_delay: float = 0.0,
        event_drop_fraction: float = 0.0,
        background: bool = True,
        tick_interval: float = 0.01,
        seed: int | None = None,
        strict: bool = True,
    ) -> None:
        if event_id_key not in ("imageSetId", "imagesetId"):
            raise ValueError("event_id_key must be 'imageSetId' or 'imagesetId'")
        if frame_quota_error not in model.error_codes("CopyImageSet"):
            raise ValueError(f"frame_quota_error must be one of {model.error_codes('CopyImageSet')}")
        if stale_version_error not in errors.STALE_VERSION_ERRORS:
            raise ValueError(f"stale_version_error must be one of {errors.STALE_VERSION_ERRORS}")
        self.clock: Clock = clock or get_clock()  # default: the process clock hicopy code uses
        self.account = account
        self.region = region
        self.event_sink = event_sink
        self.throttling = throttling
        self.throttle_rates = {**DEFAULT_THROTTLES, **(throttle_rates or {})}
        self.background = background
        self.tick_interval = tick_interval
        self.strict = strict
        self.settings = Settings(
            copy_duration=copy_duration,
            update_duration=update_duration,
            delete_duration=delete_duration,
            import_duration=import_duration,
            max_frames_per_copy=max_frames_per_copy,
            max_concurrent_copies=max_concurrent_copies,
            frame_quota_error=frame_quota_error,
            first_copy_version=first_copy_version,
            event_id_key=event_id_key,
            source_copy_events=source_copy_events,
            stale_version_error=stale_version_error,
            pad_numbers=pad_numbers,
        )
        # Image set events reach the sink after this delay (clock seconds); this fraction of them never does.
        self.delivery = EventDelivery(self.clock, delay=event_delivery_delay, drop=event_drop_fraction, seed=seed)
        self._lock = threading.RLock()
        self._store = Store(account, region, random.Random(seed), self.settings)
        self._import_plans: deque[ImportPlan] = deque()
        self._faults: dict[str, deque[tuple[str, str]]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._calls: list[CallRecord] = []
        self._events: list[EmittedEvent] = []
        self.effect_errors: list[BaseException] = []
        self._drainer: int | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._hook: Hook | None = None

    # =========================================================================================== test set-up

    def create_datastore(self, name: str = "emulated-datastore", *, datastore_id: str | None = None) -> str:
        """An ACTIVE data store; returns its 32-character ``[0-9a-z]`` id (generated unless ``datastore_id``).

        With an existing ``datastore_id`` this returns it unchanged (idempotent set-up).
        """
        if datastore_id is not None and not re.fullmatch(DATASTORE_ID_PATTERN, datastore_id):
            raise ValueError(f"datastore_id must be 32 characters [0-9a-z], got {datastore_id!r}")
        with self._lock:
            now = self.clock.now()
            if datastore_id is not None and datastore_id in self._store.datastores:
                return datastore_id
            datastore_id = datastore_id or self._store.new_id()
            self._store.datastores[datastore_id] = Datastore(datastore_id, name, ACTIVE, now, now)
            return datastore_id

    def seed_image_set(
        self,
        datastore_id: str,
        series: int = 1,
        instances_per_series: int = 1,
        frames_per_instance: int = 1,
        patient_id: str | None = None,
        study_uid: str | None = None,
        is_primary: bool = True,
        series_uids: Sequence[str] | None = None,
        *,
        patient_name: str | None = None,
        modality: str = "CT",
    ) -> SeededImageSet:
        """An ACTIVE/CREATED image set (version 1) with generated, valid DICOM UIDs. Emits no events."""
        with self._lock:
            metadata = build_metadata(
                self._store.rng,
                series=series,
                instances_per_series=instances_per_series,
                frames_per_instance=frames_per_instance,
                patient_id=patient_id,
                patient_name=patient_name,
                study_uid=study_uid,
                series_uids=list(series_uids) if series_uids is not None else None,
                modality=modality,
                pad_numbers=self.settings.pad_numbers,
            )
            return describe(seed(self._store, datastore_id, metadata, is_primary=is_primary, now=self.clock.now()))

    def seed_image_set_from_metadata(
        self,
        datastore_id: str,
        metadata: MetadataDocument,
        is_primary: bool = True,
        *,
        image_set_id: str | None = None,
    ) -> SeededImageSet:
        """An ACTIVE image set (version 1) with exactly this metadata document, as GetImageSetMetadata returns it
        (the parsed object, JSON text, or the gzip blob). Emits no events.

        ``DatastoreID`` is the data store's; ``ImageSetID`` is generated unless ``image_set_id`` is given (pass the
        document's own ``ImageSetID`` to keep it: GetImageSetMetadata then returns the document unchanged).
        """
        document = load_metadata(metadata)
        with self._lock:
            return describe(
                seed(
                    self._store,
                    datastore_id,
                    document,
                    is_primary=is_primary,
                    now=self.clock.now(),
                    image_set_id=image_set_id,
                )
            )

    # =========================================================================================== behaviour knobs

    def inject_fault(self, operation: str, error_code: str, times: int = 1, message: str | None = None) -> None:
        """The next ``times`` calls of ``operation`` fail with ``error_code`` (one of the operation's model errors)."""
        allowed = model.error_codes(operation)
        if error_code not in allowed:
            raise ValueError(f"{operation} does not model {error_code}; choose one of {allowed}")
        with self._lock:
            queue = self._faults.setdefault(operation, deque())
            queue.extend([(error_code, message or f"Injected {error_code}")] * times)

    def fail_next_copy(self, message: str = "INVALID_REQUEST:  Injected copy failure.", times: int = 1) -> None:
        """The next ``times`` accepted copies end COPY_FAILED with ``message``."""
        if not errors.valid_message(message):
            raise ValueError("message must fit the model's Message pattern [\\w -:`]+ (max 2048)")
        with self._lock:
            self.settings.fail_next_copy.extend([message] * times)

    def set_copy_duration(self, duration: CopyDuration) -> None:
        """Seconds of clock time a copy stays LOCKED: a number or ``callable(source_id, destination_id)``."""
        with self._lock:
            self.settings.copy_duration = duration

    @property
    def copy_durations(self) -> deque[float]:
        """Per-copy durations consumed first-in first-out before ``copy_duration`` applies."""
        return self.settings.copy_durations

    def set_throttling(self, enabled: bool) -> None:
        with self._lock:
            self.throttling = enabled
            self._buckets.clear()

    def lock(
        self,
        datastore_id: str,
        image_set_id: str,
        seconds: float,
        *,
        status: str = "UPDATING",
        bump_version: bool = False,
    ) -> None:
        """Simulate another writer: the image set is LOCKED/``status`` for ``seconds`` (writes get a conflict).

        ``bump_version``: the writer leaves a new version (ACTIVE/UPDATED) behind, so held version ids go stale.
        """
        with self._lock:
            now = self.clock.now()
            self._store.advance(now)
            image_set = self._store.image_set(datastore_id, image_set_id)
            if image_set.locked:
                raise ValueError(f"image set {image_set_id} is already LOCKED ({image_set.latest.status})")
            self._store.hold(image_set, "external", status, now)
            emit_image_set_event(self._store, image_set)

            def release(due: float) -> None:
                self._store.release(image_set, due)
                if bump_version:
                    version = self._store.new_version(
                        image_set, image_set.latest.metadata, now=due, state=ACTIVE, status="UPDATED"
                    )
                    emit_image_set_event(self._store, image_set, version)

            self._store.at(now + seconds, release)
            self._ensure_ticker()
        self._drain()

    # =========================================================================================== imports

    def simulate_import(
        self,
        datastore_id: str,
        *,
        input_s3_uri: str,
        output_s3_uri: str,
        image_sets: Sequence[ImportSource],
        failures: Sequence[tuple[str, str, str]] = (),
        warnings: Sequence[tuple[str, str, str]] = (),
        write_manifest: Writer | None = None,
        manifest_delay: float = 0.0,
        job_status: str = "COMPLETED",
        message: str | None = None,
        job_name: str | None = None,
    ) -> str:
        """Run a DICOM import job to completion now; returns its job id (see ``importer`` for the semantics)."""
        plan = ImportPlan(
            list(image_sets), list(failures), list(warnings), write_manifest, manifest_delay, job_status, message
        )
        with self._lock:
            now = self.clock.now()
            self._store.advance(now)
            job = new_job(
                self._store,
                now,
                datastore_id,
                input_s3_uri=input_s3_uri,
                output_s3_uri=output_s3_uri,
                job_name=job_name,
            )
            try:
                run_import(self._store, job, plan, now)
            except Exception:
                del self._store.jobs[job.job_id]
                raise
            self._ensure_ticker()
        self._drain()
        return job.job_id

    def next_import(
        self,
        image_sets: Sequence[ImportSource],
        *,
        failures: Sequence[tuple[str, str, str]] = (),
        warnings: Sequence[tuple[str, str, str]] = (),
        write_manifest: Writer | None = None,
        manifest_delay: float = 0.0,
        job_status: str = "COMPLETED",
        message: str | None = None,
    ) -> None:
        """What the next StartDICOMImportJob call imports (default: one series of two generated instances)."""
        with self._lock:
            self._import_plans.append(
                ImportPlan(
                    list(image_sets),
                    list(failures),
                    list(warnings),
                    write_manifest,
                    manifest_delay,
                    job_status,
                    message,
                )
            )

    # =========================================================================================== read helpers

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, operation: str) -> list[CallRecord]:
        return [c for c in self.calls if c.operation == operation]

    @property
    def events(self) -> list[EmittedEvent]:
        """Every event handed to the sink so far (recorded even without a sink)."""
        with self._lock:
            return list(self._events)

    def _read(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            now = self.clock.now()
            self._store.advance(now)
            output = OPERATIONS[operation](Context(self._store, now), params)
        self._drain()
        return output

    def image_set(self, datastore_id: str, image_set_id: str, version: str | int | None = None) -> dict[str, Any]:
        """GetImageSet's answer (API member names, timestamps as epoch seconds), without throttling or records."""
        params = {"datastoreId": datastore_id, "imageSetId": image_set_id}
        if version is not None:
            params["versionId"] = str(version)
        return {k: v for k, v in self._read("GetImageSet", params).items() if v is not None}

    def versions(self, datastore_id: str, image_set_id: str) -> list[dict[str, Any]]:
        """Every version's properties, oldest first."""
        with self._lock:
            now = self.clock.now()
            self._store.advance(now)
            image_set = self._store.image_set(datastore_id, image_set_id, allow_deleted=True)
            count = len(image_set.versions)
        listed = self._read(
            "ListImageSetVersions",
            {"datastoreId": datastore_id, "imageSetId": image_set_id, "maxResults": max(count, 1)},
        )
        return [{k: v for k, v in p.items() if v is not None} for p in reversed(listed["imageSetPropertiesList"])]

    def metadata(self, datastore_id: str, image_set_id: str, version: str | int | None = None) -> dict[str, Any]:
        params = {"datastoreId": datastore_id, "imageSetId": image_set_id}
        if version is not None:
            params["versionId"] = str(version)
        blob = self._read("GetImageSetMetadata", params)["imageSetMetadataBlob"]
        loaded: dict[str, Any] = json.loads(gzip.decompress(blob))
        return loaded

    def import_job(self, datastore_id: str, job_id: str) -> dict[str, Any]:
        properties = self._read("GetDICOMImportJob", {"datastoreId": datastore_id, "jobId": job_id})["jobProperties"]
        return {k: v for k, v in properties.items() if v is not None}

    def datastore_arn(self, datastore_id: str) -> str:
        return self._store.datastore_arn(datastore_id)

    def image_set_arn(self, datastore_id: str, image_set_id: str) -> str:
        return self._store.image_set_arn(datastore_id, image_set_id)

    # =========================================================================================== time

    def pending(self) -> int:
        """How many timed actions are still due (copy completions, lock expiries, delayed manifests, ...)."""
        with self._lock:
            return self._store.pending()

    def tick(self) -> int:
        """Carry out everything due by now (copy completions, lock expiries, delayed manifests). Returns the count."""
        with self._lock:
            ran = self._store.advance(self.clock.now())
        self._drain()
        return ran

    def _ensure_ticker(self) -> None:
        """Start the background ticker while timed work is pending (called with the lock held)."""
        if not self.background or self._stop.is_set() or self._store.next_due() is None:
            return
        if self._ticker is not None and self._ticker.is_alive():
            return
        self._ticker = threading.Thread(target=self._tick_loop, name="healthimaging-emulator-ticker", daemon=True)
        self._ticker.start()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval):
            try:
                self.tick()
            except Exception as exc:  # keep ticking; surface the problem to tests
                log.exception("HealthImaging emulator tick failed")
                self.effect_errors.append(exc)
            with self._lock:
                if self._store.next_due() is None:
                    self._ticker = None
                    return

    def close(self) -> None:
        """Stop the background ticker (pending work still completes on later calls or ``tick()``)."""
        self._stop.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=5)
        self._ticker = None

    # =========================================================================================== effects

    def _drain(self) -> None:
        """Deliver queued events and S3 writes in order, outside the lock, one thread at a time (no nesting)."""
        with self._lock:
            if self._drainer is not None:
                return
            self._drainer = threading.get_ident()
        try:
            while True:
                with self._lock:
                    if not self._store.outbox:
                        return
                    effect = self._store.outbox.popleft()
                self._perform(effect)
        finally:
            with self._lock:
                self._drainer = None

    def _perform(self, effect: EventEffect | WriteEffect) -> None:
        try:
            if isinstance(effect, EventEffect):
                delivered = self.delivery.delivered(effect.detail_type)
                with self._lock:
                    self._events.append(
                        EmittedEvent(effect.detail_type, effect.detail, effect.resources, self.clock.now(), delivered)
                    )
                sink = self.event_sink
                if sink is not None and delivered:
                    self.delivery.send(
                        effect.detail_type, lambda: sink(effect.detail_type, effect.detail, effect.resources)
                    )
            else:
                (effect.writer or self._s3_write)(effect.uri, effect.body)
        except Exception as exc:
            log.exception("HealthImaging emulator side effect failed: %r", effect)
            self.effect_errors.append(exc)

    def _s3_write(self, uri: str, body: bytes) -> None:
        import boto3

        parts = urlsplit(uri)
        boto3.client("s3", region_name=self.region).put_object(
            Bucket=parts.netloc, Key=parts.path.lstrip("/"), Body=body
        )

    # =========================================================================================== the API

    def handle(
        self, method: str, url: str, body: bytes | str | None, operation: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one rest-json HTTP request: (status, headers, body)."""
        with self._lock:
            now = self.clock.now()
            self._store.advance(now)
            op = operation or model.route(method, url) or "Unknown"
            params: dict[str, Any] = {}
            error_code: str | None = None
            try:
                if op not in model.operation_names():
                    raise errors.validation(f"Unknown operation {method} {urlsplit(url).path}")
                try:
                    params = model.parse_request(op, method, url, body)
                except (ValueError, KeyError) as exc:
                    raise errors.validation(f"Malformed request: {exc}") from exc
                self._check_fault(op)
                self._check_throttle(op, now)
                problems = model.validate_request(op, params)
                if problems:
                    raise errors.validation("; ".join(problems))
                handler = OPERATIONS.get(op)
                if handler is None:
                    raise errors.validation(f"{op} is not supported by the HealthImaging emulator")
                output = {
                    k: v
                    for k, v in handler(Context(self._store, now, self._import_plans), params).items()
                    if v is not None
                }
                if self.strict:
                    problems = model.validate_output(op, output)
                    if problems:
                        raise EmulatorBug(f"{op} output does not fit the model: {problems}")
                response = model.serialize_response(op, output)
            except errors.ServiceError as exc:
                error_code = exc.code
                response = model.error_response(exc.code, exc.message)
            self._calls.append(CallRecord(op, params, response[0], error_code, now))
            self._ensure_ticker()
        self._drain()
        return response

    def _check_fault(self, operation: str) -> None:
        queue = self._faults.get(operation)
        if queue:
            code, message = queue.popleft()
            raise errors.ServiceError(code, message)

    def _check_throttle(self, operation: str, now: float) -> None:
        if not self.throttling or operation not in self.throttle_rates:
            return
        bucket = self._buckets.get(operation)
        if bucket is None:
            rate, burst = self.throttle_rates[operation]
            bucket = self._buckets[operation] = TokenBucket(rate, burst, now)
        if not bucket.take(now):
            raise errors.ServiceError("ThrottlingException", "Rate exceeded")

    # =========================================================================================== install

    def install(self) -> None:
        with self._lock:
            if self._hook is None:
                self._stop.clear()
                self._hook = install_hook(self)

    def uninstall(self) -> None:
        with self._lock:
            hook, self._hook = self._hook, None
        if hook is not None:
            uninstall_hook(hook)
        self.close()

    def __enter__(self) -> HealthImagingEmulator:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


@contextmanager
def install(emulator: HealthImagingEmulator) -> Iterator[HealthImagingEmulator]:
    """Route every boto3/botocore ``medical-imaging`` client created inside the block to ``emulator``."""
    emulator.install()
    try:
        yield emulator
    finally:
        emulator.uninstall()
