"""DeleteSource: the post-import deletion of the source, paced like a copy, and only for what the import planner
planned and the destination provably holds."""

import pytest

from hicopy.domain.deletion import delete_source
from hicopy.domain.job import Trigger
from hicopy.domain.pacing import COPY_ACTION, DELETE_ACTION, pace
from hicopy.domain.planning import prepare
from hicopy.domain.ports import PaceKey, PlannedCopy
from hicopy.domain.state import ImageSetVersion, SourceDeletion
from hicopy.errors import SlotMissed
from tests.support.fakes import FakeClock, metadata
from tests.unit.workflow_support import DS, DST, S1, SRC, state

IMPORT_JOB = "1" * 32
SOURCE_SOPS = {f"{S1}.{n}": 1 for n in range(1, 6)}


class FakeDeleter:
    def __init__(self, clock):
        self.clock, self.deleted = clock, []

    def delete_image_set(self, datastore_id, image_set_id):
        self.deleted.append((image_set_id, self.clock.now()))
        return "DELETING"


class FakePlans:
    def __init__(self, *plans):
        self.plans = {p.job_id: p for p in plans}

    def record(self, plan, now):
        self.plans[plan.job_id] = plan

    def get(self, job_id):
        return self.plans.get(job_id)


def planned_copy(**overrides):
    """What the planner recorded for job-1: merge the whole source (version 2) into DST, then delete it."""
    fields = {
        "job_id": "job-1",
        "datastore_id": DS,
        "import_job_id": IMPORT_JOB,
        "source_image_set_id": SRC,
        "source_version_id": "2",
        "destination_image_set_id": DST,
        "whole_copy": True,
        "delete_source": True,
    }
    return PlannedCopy(**{**fields, **overrides})


def copied_with_pending_deletion(imaging, *, held=SOURCE_SOPS, **job):
    """job-1 merged its source into DST (version 8 holds ``held`` besides DST's own instance), deletion pending."""
    job = {"destination": {"imageSetId": DST}, **job}
    st = prepare(state(**job), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
    imaging.sets[DST].version = 8
    imaging.sets[DST].metas[8] = metadata({"1.2.3.4": {"1.2.3.4.1": 1}, S1: held})
    trigger = Trigger.model_validate({"type": "import", "importJobId": IMPORT_JOB, "deleteSourceAfterCopy": True})
    return st.model_copy(
        update={
            "trigger": trigger,
            "done": True,
            "destination": ImageSetVersion(imageSetId=DST, versionId="8"),
            "sourceDeletion": SourceDeletion(status="PENDING"),
        }
    )


def run_delete(st, imaging, pacer, clock, plans):
    deleter = FakeDeleter(clock)
    out = delete_source(st, deleter, pacer, clock, plans=plans, imaging=imaging)
    return out, deleter


def test_the_source_deletion_takes_its_own_slot_and_turn(pacer, imaging):
    clock = FakeClock()
    st = pace(copied_with_pending_deletion(imaging), pacer, clock)
    assert pacer.store.read(PaceKey(DELETE_ACTION)) is not None and pacer.store.read(PaceKey(COPY_ACTION)) is None
    start = clock.t
    pacer.store.values[PaceKey(DELETE_ACTION, turn=True)] = start + 5.0  # another deletion went out late, just now
    out, deleter = run_delete(st, imaging, pacer, clock, FakePlans(planned_copy()))
    assert deleter.deleted == [(SRC, pytest.approx(start + 5.0))]  # waited for the turn instead of calling early
    assert out.sourceDeletion.status == "DELETED" and out.pace is None


def test_a_source_deletion_too_far_behind_the_turns_takes_a_new_slot(pacer, imaging):
    clock = FakeClock()
    st = pace(copied_with_pending_deletion(imaging), pacer, clock)
    pacer.store.values[PaceKey(DELETE_ACTION, turn=True)] = clock.t + 40.0
    deleter = FakeDeleter(clock)
    with pytest.raises(SlotMissed, match="DeleteImageSet for the slot"):
        delete_source(st, deleter, pacer, clock, plans=FakePlans(planned_copy()), imaging=imaging)
    assert deleter.deleted == []


@pytest.mark.parametrize(
    ("plans", "job", "why"),
    [
        # A queue sender's hicopyTrigger asking for the deletion: the planner never planned this job.
        (FakePlans(), {}, "the import planner did not plan this job"),
        (FakePlans(planned_copy(delete_source=False)), {}, "did not plan this job's source for deletion"),
        (FakePlans(planned_copy(import_job_id="2" * 32)), {}, "not the one the planner planned it for"),
        (FakePlans(planned_copy(source_image_set_id="e" * 32)), {}, "not the image set the planner planned"),
        (FakePlans(planned_copy(destination_image_set_id="f" * 32)), {}, "destination is not the one the planner"),
        (FakePlans(planned_copy(destination_image_set_id=None)), {}, "destination is not the one the planner"),
        # The sender's job (same ID as a planned one) copies one instance: not the whole source.
        (FakePlans(planned_copy()), {"instances": [f"{S1}.1"]}, "not a copy of the whole source"),
        (FakePlans(planned_copy(whole_copy=False)), {}, "not a copy of the whole source"),
        (FakePlans(planned_copy(source_version_id="1")), {}, "source version copied (2) is not the version"),
        (FakePlans(planned_copy(source_version_id=None)), {}, "source version copied (2) is not the version"),
    ],
)
def test_nothing_is_deleted_that_the_planner_did_not_plan(pacer, imaging, plans, job, why):
    clock = FakeClock()
    st = pace(copied_with_pending_deletion(imaging, **job), pacer, clock)
    out, deleter = run_delete(st, imaging, pacer, clock, plans)
    assert deleter.deleted == []
    assert out.sourceDeletion.status == "REFUSED" and why in out.sourceDeletion.message, out.sourceDeletion


def test_nothing_is_deleted_when_the_destination_misses_an_instance(pacer, imaging):
    clock = FakeClock()
    held = dict(list(SOURCE_SOPS.items())[:4])  # the planned whole copy, but the destination misses one instance
    st = pace(copied_with_pending_deletion(imaging, held=held), pacer, clock)
    out, deleter = run_delete(st, imaging, pacer, clock, FakePlans(planned_copy()))
    assert deleter.deleted == [] and out.sourceDeletion.status == "REFUSED"
    assert f"version 8 of the destination image set {DST} misses 1 of the source's 5 instances" in (
        out.sourceDeletion.message
    )


def test_nothing_is_deleted_when_the_source_changed_after_the_copy(pacer, imaging):
    clock = FakeClock()
    st = pace(copied_with_pending_deletion(imaging), pacer, clock)
    imaging.sets[SRC].version = 3  # instances added to the source since it was copied
    out, deleter = run_delete(st, imaging, pacer, clock, FakePlans(planned_copy()))
    assert deleter.deleted == [] and "source changed since it was copied (version 2 -> 3)" in (
        out.sourceDeletion.message
    )
