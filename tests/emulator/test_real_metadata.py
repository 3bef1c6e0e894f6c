"""Real GetImageSetMetadata documents in the emulator, the selection builder and a copy.

Each test runs on both real documents (``real_data.METADATA_DOCUMENTS``): the 2025 one writes IS values as padded
strings (``"SeriesNumber": "1 "``) and has ``StoredTransferSyntaxUID``/``ChecksumType``/``DICOMVRs``; the 2023 one
writes them unpadded, has ``null`` Patient ID and Series Number, and lacks ``StoredTransferSyntaxUID``/``ChecksumType``.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from hicopy.adapters.healthimaging import HealthImaging
from hicopy.domain.ports import CopyRequest
from hicopy.domain.selection import index_metadata, plan_chunks
from hicopy.errors import SelectionInvalid
from offline.clock import ManualClock
from offline.healthimaging import HealthImagingEmulator, SeededImageSet
from offline.healthimaging.dicom import dicom_int
from tests.emulator.real_data import METADATA_DOCUMENTS, instances, metadata_document

COPY_SECONDS = 2.0  # the emu fixture's copy_duration


@pytest.fixture(params=METADATA_DOCUMENTS)
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    return metadata_document(request.param)


@pytest.fixture
def seeded(emu: HealthImagingEmulator, document: dict[str, Any]) -> SeededImageSet:
    """The document in its own data store, under its own ImageSetID."""
    datastore_id = emu.create_datastore("real", datastore_id=document["DatastoreID"])
    return emu.seed_image_set_from_metadata(datastore_id, document, image_set_id=document["ImageSetID"])


def _metadata(mi: Any, datastore_id: str, image_set_id: str) -> dict[str, Any]:
    blob = mi.get_image_set_metadata(datastoreId=datastore_id, imageSetId=image_set_id)["imageSetMetadataBlob"]
    loaded: dict[str, Any] = json.loads(gzip.decompress(blob.read()))
    return loaded


def test_get_image_set_metadata_returns_the_real_document_unchanged(emu, mi, document, seeded) -> None:
    assert (seeded.datastore_id, seeded.image_set_id) == (document["DatastoreID"], document["ImageSetID"])
    assert _metadata(mi, seeded.datastore_id, seeded.image_set_id) == document
    assert seeded.instances == {s: [sop for s2, sop, _ in instances(document) if s2 == s] for s in seeded.series_uids}
    # The same document as GetImageSetMetadata's gzip blob, or as JSON text, seeds the same content.
    blob = gzip.compress(json.dumps(document).encode())
    for form in (blob, json.dumps(document)):
        again = emu.seed_image_set_from_metadata(seeded.datastore_id, form, is_primary=False)
        copy = _metadata(mi, seeded.datastore_id, again.image_set_id)
        assert copy["ImageSetID"] == again.image_set_id != document["ImageSetID"]
        assert {k: v for k, v in copy.items() if k != "ImageSetID"} == {
            k: v for k, v in document.items() if k != "ImageSetID"
        }
    with pytest.raises(ValueError, match="already exists"):
        emu.seed_image_set_from_metadata(seeded.datastore_id, document, False, image_set_id=document["ImageSetID"])


def test_get_image_set_and_search_image_sets_on_a_real_document(mi, document, seeded) -> None:
    props = mi.get_image_set(datastoreId=seeded.datastore_id, imageSetId=seeded.image_set_id)
    assert (props["versionId"], props["imageSetState"], props["imageSetWorkflowStatus"]) == ("1", "ACTIVE", "CREATED")
    assert props["isPrimary"] is True
    (series_uid, series), *_ = document["Study"]["Series"].items()
    filters = [
        {"values": [{"DICOMSeriesInstanceUID": series_uid}], "operator": "EQUAL"},
        {"values": [{"isPrimary": True}], "operator": "EQUAL"},
    ]
    found = mi.search_image_sets(datastoreId=seeded.datastore_id, searchCriteria={"filters": filters})
    [summary] = found["imageSetsMetadataSummaries"]
    assert (summary["imageSetId"], summary["version"], summary["isPrimary"]) == (seeded.image_set_id, 1, True)
    tags = summary["DICOMTags"]
    study = document["Study"]["DICOM"]
    assert tags["DICOMStudyInstanceUID"] == study["StudyInstanceUID"]
    assert tags["DICOMSeriesInstanceUID"] == series_uid
    assert tags["DICOMNumberOfStudyRelatedInstances"] == len(instances(document))
    assert tags.get("DICOMSeriesNumber") == dicom_int(series["DICOM"]["SeriesNumber"])  # "1 " -> 1; null -> absent
    assert tags.get("DICOMPatientId") == document["Patient"]["DICOM"]["PatientID"]  # null -> absent
    by_study = {"values": [{"DICOMStudyInstanceUID": study["StudyInstanceUID"]}], "operator": "EQUAL"}
    assert mi.search_image_sets(datastoreId=seeded.datastore_id, searchCriteria={"filters": [by_study]})[
        "imageSetsMetadataSummaries"
    ][0]["imageSetId"] == (seeded.image_set_id)


def test_selection_builder_reads_a_real_document(document) -> None:
    index = index_metadata(document)
    expected = [(series_uid, sop_uid, len(inst["ImageFrames"])) for series_uid, sop_uid, inst in instances(document)]
    assert [(r.series_uid, r.sop_uid, r.frames) for r in index.instances] == expected
    for _, _, instance in instances(document):  # NumberOfFrames is an IS string; it agrees with len(ImageFrames)
        assert isinstance(instance["DICOM"]["NumberOfFrames"], str)
        assert dicom_int(instance["DICOM"]["NumberOfFrames"]) == len(instance["ImageFrames"])
    whole = plan_chunks(index)
    assert whole.chunk_count == 1 and whole.chunks[0].whole
    assert whole.total_frames == sum(frames for _, _, frames in expected)  # the 2023 document has a 14-frame instance
    series_uid, first_sop, _ = expected[0]
    subset = plan_chunks(index, instances=[first_sop])
    assert json.loads(subset.chunks[0].copiable_attributes() or "") == {
        "SchemaVersion": "1.1",
        "Study": {"Series": {series_uid: {"Instances": {first_sop: {}}}}},
    }
    limit = _chunk_limit(document)
    chunked = plan_chunks(index, series=[series_uid], frame_limit=limit)
    assert all(chunk.frames <= limit for chunk in chunked.chunks)
    assert [r.sop_uid for c in chunked.chunks for r in c.instances] == [sop for _, sop, _ in expected]
    assert (chunked.chunk_count > 1) == (whole.total_frames > limit)
    biggest = max(frames for _, _, frames in expected)
    if biggest > 1:  # an instance above the per-copy frame limit cannot be copied at all
        with pytest.raises(SelectionInvalid, match=f"has {biggest} frames"):
            plan_chunks(index, series=[series_uid], frame_limit=biggest - 1)


def _chunk_limit(document: dict[str, Any]) -> int:
    """A frame limit that splits the document into several chunks: its biggest instance plus one frame."""
    return max(len(inst["ImageFrames"]) for _, _, inst in instances(document)) + 1


def _copy(imaging: HealthImaging, clock: ManualClock, request: CopyRequest) -> str:
    started = imaging.copy_image_set(request)
    clock.advance(COPY_SECONDS)
    info = imaging.get_image_set(request.datastore_id, started.destination_image_set_id)
    assert (info.state, info.workflow_status, info.message) == ("ACTIVE", "COPIED", None)
    return started.destination_image_set_id


def test_copy_of_a_real_document_whole_and_in_chunks(clock, mi, document, seeded) -> None:
    """Through the orchestrator's adapter: a whole copy, then the selection builder's chunks into one destination."""
    imaging = HealthImaging(mi)
    ds, src = seeded.datastore_id, seeded.image_set_id
    source = imaging.get_metadata(ds, src, whole=True)
    assert source == document  # the adapter's gunzip/JSON of the real document

    whole = _copy(imaging, clock, CopyRequest(ds, src, "1", None, None, None))
    copied = imaging.get_metadata(ds, whole, whole=True)
    assert copied["Study"]["Series"] == document["Study"]["Series"]  # every element as written, padding and all
    assert (copied["Patient"], copied["Study"]["DICOM"]) == (document["Patient"], document["Study"]["DICOM"])

    plan = plan_chunks(
        index_metadata(source), series=list(document["Study"]["Series"]), frame_limit=_chunk_limit(document)
    )
    destination: str | None = None
    for chunk in plan.chunks:
        version = None if destination is None else imaging.get_image_set(ds, destination).version_id
        request = CopyRequest(ds, src, "1", destination, version, chunk.copiable_attributes())
        destination = _copy(imaging, clock, request)
    assert destination is not None
    assert imaging.get_metadata(ds, destination, whole=True)["Study"]["Series"] == document["Study"]["Series"]
    assert imaging.get_image_set(ds, destination).version_id == str(plan.chunk_count)


@pytest.mark.parametrize(("pad", "real_name"), [(True, METADATA_DOCUMENTS[0]), (False, METADATA_DOCUMENTS[1])])
def test_generated_metadata_is_laid_out_and_typed_like_the_real_documents(clock, pad: bool, real_name: str) -> None:
    """The emulator's own documents: the 2025 document's keys at every level, and each DICOM element it shares with
    a real document has that document's type; IS strings padded as the 2025 document pads them, or (``pad_numbers``
    off) unpadded as the 2023 document writes them."""
    emu = HealthImagingEmulator(clock=clock, background=False, throttling=False, seed=1, pad_numbers=pad)
    ds = emu.create_datastore()
    generated = emu.metadata(ds, emu.seed_image_set(ds, instances_per_series=12).image_set_id)
    layout, real = metadata_document(METADATA_DOCUMENTS[0]), metadata_document(real_name)
    assert generated.keys() == layout.keys()
    (_, _, gen_instance), (_, _, real_instance) = instances(generated)[0], instances(layout)[0]
    assert gen_instance.keys() == real_instance.keys()  # DICOM, DICOMVRs, StoredTransferSyntaxUID, ChecksumType, ...
    assert gen_instance["ImageFrames"][0].keys() == real_instance["ImageFrames"][0].keys()
    assert (gen_instance["ChecksumType"], gen_instance["StoredTransferSyntaxUID"]) == (
        real_instance["ChecksumType"],
        real_instance["StoredTransferSyntaxUID"],
    )

    def shared_types(gen: dict[str, Any], ref: dict[str, Any]) -> dict[str, tuple[type, type]]:
        both = [k for k in gen if ref.get(k) is not None and gen[k] is not None]
        return {k: (type(gen[k]), type(ref[k])) for k in both}

    (gen_series,) = generated["Study"]["Series"].values()
    real_series = next(iter(real["Study"]["Series"].values()))
    checks = {
        **shared_types(gen_series["DICOM"], real_series["DICOM"]),
        **shared_types(gen_instance["DICOM"], instances(real)[0][2]["DICOM"]),
    }
    assert checks and all(g is r for g, r in checks.values()), checks
    numbers = [gen_series["DICOM"]["SeriesNumber"]]
    numbers += [inst["DICOM"][k] for _, _, inst in instances(generated) for k in ("InstanceNumber", "NumberOfFrames")]
    assert all(isinstance(n, str) and n.strip() == n.rstrip(" ") for n in numbers)
    assert all(len(n) % 2 == 0 for n in numbers) if pad else all(n == n.strip() for n in numbers)
    assert "10" in [inst["DICOM"]["InstanceNumber"] for _, _, inst in instances(generated)]  # even length: no pad
