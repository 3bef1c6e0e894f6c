import json

import pytest

from hicopy.domain.selection import index_metadata, plan_chunks
from hicopy.errors import SelectionInvalid
from tests.support.fakes import metadata

S1, S2 = "1.2.840.1.1", "1.2.840.1.2"


def index(frames_s1, frames_s2=()):
    return index_metadata(
        metadata(
            {
                S1: {f"{S1}.{n + 1}": f for n, f in enumerate(frames_s1)},
                S2: {f"{S2}.{n + 1}": f for n, f in enumerate(frames_s2)},
            }
        )
    )


def test_whole_copy_under_the_limit_has_no_copiable_attributes():
    plan = plan_chunks(index([1, 1], [1]))
    assert plan.chunk_count == 1 and plan.chunks[0].whole and plan.chunks[0].copiable_attributes() is None
    assert plan.total_frames == 3 and plan.total_instances == 3


def test_copiable_attributes_are_keyed_by_series_instance_uid():
    plan = plan_chunks(index([1, 1], [1]), instances=[f"{S1}.2", f"{S2}.1"])
    doc = json.loads(plan.chunks[0].copiable_attributes())
    assert doc == {
        "SchemaVersion": "1.1",
        "Study": {"Series": {S1: {"Instances": {f"{S1}.2": {}}}, S2: {"Instances": {f"{S2}.1": {}}}}},
    }
    assert "imageSetId" not in plan.chunks[0].copiable_attributes()


def test_series_selection_copies_every_instance_of_the_series():
    plan = plan_chunks(index([1, 1], [1]), series=[S1])
    assert [i.sop_uid for i in plan.chunks[0].instances] == [f"{S1}.1", f"{S1}.2"]


def test_exactly_the_frame_limit_is_one_chunk():
    plan = plan_chunks(index([500, 500]), frame_limit=1000)
    assert plan.chunk_count == 1 and plan.chunks[0].whole


def test_one_frame_over_the_limit_splits_and_the_first_chunk_opens_every_series():
    plan = plan_chunks(index([500, 500], [1]), frame_limit=1000)
    assert plan.chunk_count == 2 and not plan.chunks[0].whole
    assert [c.frames for c in plan.chunks] == [501, 500]
    assert [i.sop_uid for i in plan.chunks[0].instances] == [f"{S1}.1", f"{S2}.1"]
    assert [i.sop_uid for i in plan.chunks[1].instances] == [f"{S1}.2"]


def test_series_whose_first_instances_exceed_the_limit_are_rejected():
    with pytest.raises(SelectionInvalid, match="send one job per series"):
        plan_chunks(index([6, 1], [5]), frame_limit=10)


def test_selection_over_the_limit_is_chunked():
    plan = plan_chunks(index([1] * 25), series=[S1], frame_limit=10)
    assert [c.frames for c in plan.chunks] == [10, 10, 5] and [c.index for c in plan.chunks] == [0, 1, 2]


def test_instance_larger_than_the_limit_is_rejected():
    with pytest.raises(SelectionInvalid, match=r"has 1001 frames, more than the 1000-frame limit"):
        plan_chunks(index([1, 1001]), frame_limit=1000)


def test_unknown_instances_and_series_are_named():
    with pytest.raises(SelectionInvalid) as exc:
        plan_chunks(index([1]), instances=["9.9.9"], series=["8.8"])
    assert "series not in the source image set: 8.8" in exc.value.message
    assert "instances not in the source image set: 9.9.9" in exc.value.message


def test_empty_image_set_cannot_be_copied():
    with pytest.raises(SelectionInvalid, match="no instances"):
        plan_chunks(index_metadata({"Study": {"Series": {}}}))
