"""DeleteSource: the post-import deletion of the source, paced like a copy."""

import pytest

from hicopy.domain.deletion import delete_source
from hicopy.domain.pacing import COPY_ACTION, DELETE_ACTION, pace
from hicopy.domain.ports import PaceKey
from hicopy.domain.state import SourceDeletion
from hicopy.errors import SlotMissed
from tests.support.fakes import FakeClock
from tests.unit.workflow_support import SRC, state


class FakeDeleter:
    def __init__(self, clock):
        self.clock, self.deleted = clock, []

    def delete_image_set(self, datastore_id, image_set_id):
        self.deleted.append((image_set_id, self.clock.now()))
        return "DELETING"


def copied_with_pending_deletion():
    return state().model_copy(update={"done": True, "sourceDeletion": SourceDeletion(status="PENDING")})


def test_the_source_deletion_takes_its_own_slot_and_turn(pacer):
    clock = FakeClock()
    st = pace(copied_with_pending_deletion(), pacer, clock)
    assert pacer.store.read(PaceKey(DELETE_ACTION)) is not None and pacer.store.read(PaceKey(COPY_ACTION)) is None
    start = clock.t
    pacer.store.values[PaceKey(DELETE_ACTION, turn=True)] = start + 5.0  # another deletion went out late, just now
    deleter = FakeDeleter(clock)
    out = delete_source(st, deleter, pacer, clock)
    assert deleter.deleted == [(SRC, pytest.approx(start + 5.0))]  # waited for the turn instead of calling early
    assert out.sourceDeletion.status == "DELETED" and out.pace is None


def test_a_source_deletion_too_far_behind_the_turns_takes_a_new_slot(pacer):
    clock = FakeClock()
    st = pace(copied_with_pending_deletion(), pacer, clock)
    pacer.store.values[PaceKey(DELETE_ACTION, turn=True)] = clock.t + 40.0
    deleter = FakeDeleter(clock)
    with pytest.raises(SlotMissed, match="DeleteImageSet for the slot"):
        delete_source(st, deleter, pacer, clock)
    assert deleter.deleted == []
