"""Turn a job's selection and the source image set's metadata into copy chunks and ``copiableAttributes``.

``copiableAttributes`` is a JSON *string* keyed by **Series Instance UID**, then SOP Instance UID
(``{"SchemaVersion":"1.1","Study":{"Series":{"<SeriesInstanceUID>":{"Instances":{"<SOPInstanceUID>":{}}}}}}``).
AWS's own SDK examples put the literal ``"imageSetId"`` (or the image set ID) where the Series UID belongs;
this module builds the documented shape only from UIDs read in the source metadata.

A copy may carry at most ``frame_limit`` image frames (service quota, 1,000 by default). A selection above the
limit is split into sequential chunks into the same destination; the first chunk holds one instance of every selected
Series (so that later chunks only add instances to Series the destination already has), the rest follow in metadata
order. An instance that alone exceeds the limit cannot be copied and is rejected with a clear reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hicopy.errors import SelectionInvalid

COPIABLE_ATTRIBUTES_MAX_CHARS = 260_000  # API limit on the copiableAttributes string
_CHARS_BUDGET = COPIABLE_ATTRIBUTES_MAX_CHARS - 1_000  # headroom for the envelope


@dataclass(frozen=True)
class InstanceRef:
    series_uid: str
    sop_uid: str
    frames: int


@dataclass(frozen=True)
class Chunk:
    index: int
    instances: tuple[InstanceRef, ...]
    whole: bool = False  # True: copy the whole image set (no copiableAttributes)

    @property
    def frames(self) -> int:
        return sum(i.frames for i in self.instances)

    def copiable_attributes(self) -> str | None:
        """The ``copiableAttributes`` JSON string for this chunk, or None for a whole-image-set copy."""
        if self.whole:
            return None
        return build_copiable_attributes(self.instances)


@dataclass(frozen=True)
class CopyPlan:
    chunks: tuple[Chunk, ...]
    total_frames: int
    total_instances: int

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)


@dataclass
class SourceIndex:
    """The source image set's instances, in metadata order."""

    series: dict[str, list[InstanceRef]] = field(default_factory=dict)

    @property
    def instances(self) -> list[InstanceRef]:
        return [i for refs in self.series.values() for i in refs]


def index_metadata(metadata: dict[str, Any]) -> SourceIndex:
    """Read Study.Series.<SeriesUID>.Instances.<SOPUID>.ImageFrames from GetImageSetMetadata's document."""
    index = SourceIndex()
    series = ((metadata.get("Study") or {}).get("Series")) or {}
    if not isinstance(series, dict):
        raise SelectionInvalid("source metadata has no Study.Series object")
    for series_uid, series_doc in series.items():
        instances = (series_doc or {}).get("Instances") or {}
        refs = [
            InstanceRef(series_uid, sop_uid, len((inst or {}).get("ImageFrames") or []))
            for sop_uid, inst in instances.items()
        ]
        index.series[series_uid] = refs
    return index


def build_copiable_attributes(instances: tuple[InstanceRef, ...] | list[InstanceRef]) -> str:
    series: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for ref in instances:
        series.setdefault(ref.series_uid, {"Instances": {}})["Instances"][ref.sop_uid] = {}
    return json.dumps({"SchemaVersion": "1.1", "Study": {"Series": series}}, separators=(",", ":"))


def select_instances(
    index: SourceIndex, *, instances: list[str] | None, series: list[str] | None
) -> list[InstanceRef] | None:
    """The selected instances in metadata order, or None when the job selects the whole image set."""
    if not instances and not series:
        return None
    by_sop = {ref.sop_uid: ref for ref in index.instances}
    missing_series = [uid for uid in series or [] if uid not in index.series]
    missing_instances = [uid for uid in instances or [] if uid not in by_sop]
    problems = []
    if missing_series:
        problems.append(f"series not in the source image set: {_listing(missing_series)}")
    if missing_instances:
        problems.append(f"instances not in the source image set: {_listing(missing_instances)}")
    if problems:
        raise SelectionInvalid("; ".join(problems))
    wanted = set(instances or [])
    wanted_series = set(series or [])
    return [ref for ref in index.instances if ref.sop_uid in wanted or ref.series_uid in wanted_series]


def plan_chunks(
    index: SourceIndex,
    *,
    instances: list[str] | None = None,
    series: list[str] | None = None,
    frame_limit: int = 1000,
) -> CopyPlan:
    """Split the selection into copies of at most ``frame_limit`` frames (and within the attribute size limit)."""
    if frame_limit < 1:
        raise ValueError("frame_limit must be >= 1")
    selected = select_instances(index, instances=instances, series=series)
    everything = index.instances
    refs = everything if selected is None else selected
    if not refs:
        raise SelectionInvalid("the source image set has no instances to copy")
    total_frames = sum(r.frames for r in refs)
    if selected is None and total_frames <= frame_limit:
        return CopyPlan((Chunk(0, tuple(refs), whole=True),), total_frames, len(refs))
    too_big = [r for r in refs if r.frames > frame_limit]
    if too_big:
        first = too_big[0]
        raise SelectionInvalid(
            f"instance {first.sop_uid} has {first.frames} frames, more than the {frame_limit}-frame limit of one "
            f"copy; it cannot be copied with CopyImageSet ({len(too_big)} such instance(s))"
        )
    # The first chunk creates (or first writes) the destination. Later chunks add instances to it, and the service
    # refuses a copy whose Series the destination does not have ("Series of SourceImageSet and DestinationImageSet
    # don't match"). So the first chunk carries one instance of every selected Series; the rest follow in order.
    leaders: dict[str, InstanceRef] = {}
    for ref in refs:
        leaders.setdefault(ref.series_uid, ref)
    leader_frames = sum(r.frames for r in leaders.values())
    if leader_frames > frame_limit:
        raise SelectionInvalid(
            f"the selection spans {len(leaders)} series whose first instances alone hold {leader_frames} frames, more "
            f"than the {frame_limit}-frame limit of one copy; send one job per series"
        )
    ordered = list(leaders.values()) + [r for r in refs if leaders[r.series_uid] is not r]
    chunks: list[Chunk] = []
    current: list[InstanceRef] = []
    frames = chars = 0
    for ref in ordered:
        ref_chars = len(ref.sop_uid) + len(ref.series_uid) + 24
        if current and (frames + ref.frames > frame_limit or chars + ref_chars > _CHARS_BUDGET):
            chunks.append(Chunk(len(chunks), tuple(current)))
            current, frames, chars = [], 0, 0
        current.append(ref)
        frames += ref.frames
        chars += ref_chars
    chunks.append(Chunk(len(chunks), tuple(current)))
    return CopyPlan(tuple(chunks), total_frames, len(refs))


def _listing(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")
