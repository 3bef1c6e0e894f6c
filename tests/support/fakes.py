"""In-memory fakes of the domain ports (no boto3): fast unit tests of the workflow logic."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hicopy.domain.ports import CopyRequest, CopyStarted, ImageSetInfo, ImportMark, SubmissionRecord
from hicopy.errors import ImageSetNotFound


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(seconds, 0.0)


def metadata(series: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Metadata document with ``{series_uid: {sop_uid: frames}}``."""
    return {
        "SchemaVersion": "1.1",
        "Patient": {"DICOM": {"PatientID": "P1"}},
        "Study": {
            "DICOM": {"StudyInstanceUID": "1.2.3"},
            "Series": {
                s: {
                    "DICOM": {"Modality": "CT"},
                    "Instances": {
                        i: {"DICOM": {}, "ImageFrames": [{"ID": f"{i}-{n}"} for n in range(frames)]}
                        for i, frames in insts.items()
                    },
                }
                for s, insts in series.items()
            },
        },
    }


@dataclass
class FakeImageSet:
    version: int = 1
    state: str = "ACTIVE"
    status: str = "CREATED"
    message: str | None = None
    meta: dict[str, Any] = field(default_factory=lambda: metadata({"1.2.3.4": {"1.2.3.4.1": 1}}))
    statuses: dict[int, tuple[str, str, str | None]] = field(default_factory=dict)  # version -> (state, status, msg)
    metas: dict[int, dict[str, Any]] = field(default_factory=dict)  # version -> its metadata (default: ``meta``)
    created_at: float | None = None


class FakeImaging:
    """Just enough of HealthImaging for the workflow: versions, locks, and scripted copy outcomes."""

    def __init__(self) -> None:
        self.sets: dict[str, FakeImageSet] = {}
        self.copies: list[CopyRequest] = []
        self.next_id = 0
        self.fail_with: list[Exception] = []
        self.created: list[str] = []
        self.clock: FakeClock | None = None  # when set, copy_times records when each accepted call came
        self.copy_times: list[float] = []

    def add(self, image_set_id: str, **kw: Any) -> FakeImageSet:
        self.sets[image_set_id] = FakeImageSet(**kw)
        return self.sets[image_set_id]

    def get_image_set(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> ImageSetInfo:
        s = self.sets.get(image_set_id)
        if s is None:
            raise ImageSetNotFound(f"ResourceNotFoundException: {image_set_id}")
        v = int(version_id) if version_id else s.version
        if v > s.version:
            raise ImageSetNotFound(f"ResourceNotFoundException: {image_set_id} has no version {v}")
        state, status, msg = s.statuses.get(v, (s.state, s.status, s.message))
        return ImageSetInfo(datastore_id, image_set_id, str(v), state, status, msg, True)

    def get_metadata(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
        s = self.sets[image_set_id]
        v = int(version_id) if version_id else s.version
        return copy.deepcopy(s.metas.get(v, s.meta))

    def copy_image_set(self, request: CopyRequest) -> CopyStarted:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.copies.append(request)
        if self.clock is not None:
            self.copy_times.append(self.clock.now())
        if request.destination_image_set_id is None:
            self.next_id += 1
            dest_id = f"{self.next_id:032d}"
            self.sets[dest_id] = FakeImageSet(
                version=1, state="LOCKED", status="COPYING", created_at=self.clock.now() if self.clock else None
            )
            self.created.append(dest_id)
            dest = self.sets[dest_id]
        else:
            dest_id = request.destination_image_set_id
            dest = self.sets[dest_id]
            dest.version += 1
        dest.statuses[dest.version] = ("LOCKED", "COPYING", None)
        return CopyStarted(dest_id, str(dest.version), request.source_version_id)

    def copies_created_since(self, datastore_id: str, source_image_set_id: str, since: float) -> list[ImageSetInfo]:
        return [
            self.get_image_set(datastore_id, i)
            for i in self.created
            if i != source_image_set_id and (self.sets[i].created_at is None or self.sets[i].created_at >= since)
        ]

    def finish(self, image_set_id: str, status: str = "COPIED", message: str | None = None) -> None:
        s = self.sets[image_set_id]
        s.statuses[s.version] = ("ACTIVE", status, message)


class FakeSubmissions:
    def __init__(self) -> None:
        self.records: dict[tuple[str, int], SubmissionRecord] = {}
        self.claims: dict[str, tuple[str, int]] = {}  # new image set -> the (job, chunk) whose copy it is

    def begin(self, record: SubmissionRecord) -> SubmissionRecord | None:
        key = (record.job_id, record.chunk)
        if key in self.records:
            return self.records[key]
        self.records[key] = record
        return None

    def complete(self, record: SubmissionRecord) -> None:
        self.records[(record.job_id, record.chunk)] = record

    def abandon(self, job_id: str, chunk: int) -> None:
        rec = self.records.get((job_id, chunk))
        if rec is not None and rec.status == "SUBMITTING":
            del self.records[(job_id, chunk)]

    def claim(self, image_set_id: str, job_id: str, chunk: int, now: float) -> bool:
        return self.claims.setdefault(image_set_id, (job_id, chunk)) == (job_id, chunk)


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.events.append((detail_type, detail))


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, str] | None]] = []

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        self.messages.append((body, attributes))
        return f"m{len(self.messages)}"


class FakePublishedMarker:
    """A ``PublishedMarkerPort`` in memory: the detail-type published per job ID, and the run it was for."""

    def __init__(self) -> None:
        self.published: dict[str, str] = {}
        self.runs: dict[str, str] = {}

    def seen(self, job_id: str, received_at: str, now: float) -> bool:
        return self.runs.get(job_id) == received_at

    def mark(self, job_id: str, received_at: str, now: float, *, detail_type: str) -> None:
        self.published[job_id] = detail_type
        self.runs[job_id] = received_at


class FakeImportMarker:
    """An ``ImportMarkerPort`` in memory: what was recorded per (data store, import job)."""

    def __init__(self) -> None:
        self.planned: dict[tuple[str, str], ImportMark] = {}

    def get(self, datastore_id: str, import_job_id: str, now: float) -> ImportMark | None:
        return self.planned.get((datastore_id, import_job_id))

    def mark(self, datastore_id: str, import_job_id: str, now: float, mark: ImportMark) -> None:
        self.planned[(datastore_id, import_job_id)] = mark
