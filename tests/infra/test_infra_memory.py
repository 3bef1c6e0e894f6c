"""Issue #12 item 9: Prepare and Submit fit their configured memory with a 2x margin for a 5,000-instance study.

The metadata is a real document (``tests/data/healthimaging/metadata``) scaled up to 5,000 instances (about 27 MB of
JSON, gzipped as GetImageSetMetadata returns it), parsed by the adapter's own code (``metadata_outline``). The peak
of each task's Python allocations (tracemalloc) plus the resident size of a fresh interpreter that imported the
handlers must be at most half the ``MemorySize`` the synthesized template gives the function. Local runtimes enforce
no memory limit, so only this test sees it.
"""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hicopy.adapters.healthimaging import metadata_outline
from hicopy.domain.pacing import InMemoryPaceStore, Pacer, pace
from hicopy.domain.planning import prepare
from hicopy.domain.submission import submit
from tests.infra.helpers import logical_id
from tests.support.fakes import FakeClock, FakeImaging, FakeSubmissions
from tests.unit.workflow_support import DS, SRC, state

METADATA = Path(__file__).resolve().parents[1] / "data" / "healthimaging" / "metadata"
REAL = sorted(METADATA.glob("*.json"))
MARGIN = 2.0
FRAME_LIMIT = 1000  # the service's default frames per copy (infra.config's maxFramesPerCopy default)
# 5,000 instances of the real documents' shapes (about 3 KB of JSON each), and as many as make the 27 MB the issue
# measured for a 5,000-instance study (its instances carried more attributes).
SIZES = {"5000-instances": (5_000, 14), "27MB": (9_300, 26)}


def _scaled_document(instances: int) -> dict[str, Any]:
    """The real CT document's study, with the instances of every real document (CT, ultrasound, multi-frame) repeated
    ``instances`` times, each with its own SOP Instance UID and frame IDs, over two series."""
    docs = [json.loads(path.read_text()) for path in REAL]
    shapes = [inst for d in docs for s in d["Study"]["Series"].values() for inst in s["Instances"].values()]
    doc = copy.deepcopy(docs[-1])
    (series_uid, series), *_ = doc["Study"]["Series"].items()
    doc["Study"]["Series"] = {}
    for s in range(2):
        uid = f"{series_uid}.{s}"
        doc["Study"]["Series"][uid] = {"DICOM": {**series["DICOM"], "SeriesInstanceUID": uid}, "Instances": {}}
    uids = list(doc["Study"]["Series"])
    for n in range(instances):
        sop = f"1.3.6.1.4.1.5962.99.1.{n}.{n * 7919 % 100_003}.1533308485539"
        inst = copy.deepcopy(shapes[n % len(shapes)])
        inst["DICOM"]["SOPInstanceUID"] = sop
        if "MediaStorageSOPInstanceUID" in inst["DICOM"]:
            inst["DICOM"]["MediaStorageSOPInstanceUID"] = sop
        for k, frame in enumerate(inst["ImageFrames"]):
            frame["ID"] = f"{n:08x}{k:024x}"
        doc["Study"]["Series"][uids[n % 2]]["Instances"][sop] = inst
    return doc


@pytest.fixture(scope="module", params=list(SIZES), ids=list(SIZES))
def study(request: pytest.FixtureRequest) -> tuple[bytes, int, int, int]:
    instances, min_mb = SIZES[request.param]
    text = json.dumps(_scaled_document(instances), separators=(",", ":"))
    return gzip.compress(text.encode()), len(text), instances, min_mb


class BlobImaging(FakeImaging):
    """The fake service, but the source's metadata is the gzipped blob, read through the adapter's parser."""

    def __init__(self, blob: bytes) -> None:
        super().__init__()
        self.blob = blob
        self.add(SRC, version=1)

    def get_metadata(self, datastore_id: str, image_set_id: str, version_id: str | None = None) -> dict[str, Any]:
        return metadata_outline(self.blob, gzipped=True)


def _peak(step: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _interpreter_baseline(handler: str) -> int:
    """Resident bytes of a fresh interpreter that imported ``handler`` (what the Lambda holds before any work)."""
    # VmHWM (the peak resident size of this process image; ru_maxrss would carry the forking pytest's over exec)
    code = f"import {handler}; print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) * 1024  # kB


def _memory_mb(template: dict[str, Any], construct_id: str) -> int:
    props = template["Resources"][logical_id(template, construct_id, "AWS::Lambda::Function")]["Properties"]
    return int(props.get("MemorySize", 128))


def test_prepare_and_submit_keep_a_2x_memory_margin_for_5000_instances(
    template_json: dict[str, Any], study: tuple[bytes, int, int, int]
) -> None:
    blob, json_size, instances, min_mb = study
    assert json_size > min_mb * 2**20, json_size

    imaging, clock = BlobImaging(blob), FakeClock()
    prepared, prepare_peak = _peak(
        lambda: prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=FRAME_LIMIT)
    )
    assert prepared.plan.totalInstances == instances and prepared.plan.chunkCount > 1
    pacer = Pacer(InMemoryPaceStore(), rate=0.25)
    paced = pace(prepared, pacer, clock)
    submitted, submit_peak = _peak(lambda: submit(paced, imaging, FakeSubmissions(), pacer, clock))
    assert submitted.submission is not None and len(imaging.copies) == 1

    report = {}
    for construct_id, peak, handler in (
        ("Prepare", prepare_peak, "hicopy.handlers.prepare"),
        ("Submit", submit_peak, "hicopy.handlers.submit"),
    ):
        configured = _memory_mb(template_json, construct_id) * 2**20
        needed = _interpreter_baseline(handler) + peak
        report[construct_id] = f"{needed / 2**20:.0f} MB needed of {configured / 2**20:.0f} MB"
        assert configured >= MARGIN * needed, (construct_id, report, f"JSON {json_size / 2**20:.1f} MB")
