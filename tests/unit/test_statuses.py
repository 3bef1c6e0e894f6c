"""Every status of HealthImaging's model has one defined handling in Prepare and AwaitCopy (``domain.statuses``).

The enums are read from botocore's ``medical-imaging`` model: a status the service adds fails these tests until the
table has a row for it.
"""

from __future__ import annotations

import botocore.session
import pytest

from hicopy.domain.awaiting import await_copy
from hicopy.domain.planning import prepare
from hicopy.domain.statuses import STATES, STORAGE_TIERS, WORKFLOW_STATUSES, Verdict, verdict
from hicopy.domain.submission import submit
from hicopy.errors import (
    CopyFailed,
    Handling,
    ImageSetConflict,
    ImageSetNotFound,
    UnexpectedImageSetStatus,
)
from tests.support.fakes import FakeClock, FakeSubmissions
from tests.unit.workflow_support import BACKOFF, DS, DST, SRC, state

MODEL = botocore.session.get_session().get_service_model("medical-imaging")


def enum(shape: str) -> list[str]:
    return list(MODEL.shape_for(shape).enum)


@pytest.mark.parametrize(
    ("shape", "table"),
    [("ImageSetState", STATES), ("ImageSetWorkflowStatus", WORKFLOW_STATUSES), ("StorageTier", STORAGE_TIERS)],
)
def test_the_table_has_exactly_the_model_s_values(shape, table):
    assert sorted(table) == sorted(enum(shape)), f"{shape}: give every value of the model one row"


def test_the_model_is_the_one_the_lambdas_ship_with():
    # GetImageSet answers with the members the table reads: a model without them would make the table moot.
    members = MODEL.operation_model("GetImageSet").output_shape.members
    assert {"imageSetState", "imageSetWorkflowStatus", "storageTier"} <= set(members)


def _prepare(imaging, role):
    job = {"destination": {"imageSetId": DST}}
    return prepare(state(**job), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)


PREPARE_ERRORS = {Verdict.WAIT: ImageSetConflict, Verdict.FAIL: (UnexpectedImageSetStatus, ImageSetNotFound)}


@pytest.mark.parametrize("image_set_state", enum("ImageSetState"))
@pytest.mark.parametrize("status", enum("ImageSetWorkflowStatus"))
@pytest.mark.parametrize("role", ["source", "destination"])
def test_prepare_waits_fails_naming_the_status_or_goes_on(imaging, image_set_state, status, role):
    target = imaging.sets[SRC if role == "source" else DST]
    target.state, target.status = image_set_state, status
    action, _ = verdict("prepare", image_set_state, status)
    if action is Verdict.CONTINUE:
        assert _prepare(imaging, role).plan is not None
        return
    with pytest.raises(PREPARE_ERRORS[action]) as caught:
        _prepare(imaging, role)
    assert status in caught.value.message and role in caught.value.message
    if action is Verdict.WAIT:
        assert caught.value.handling is Handling.STATE  # retried, bounded
    else:
        assert caught.value.handling is Handling.TERMINAL


AWAIT_ERRORS = {Verdict.FAIL: (CopyFailed, UnexpectedImageSetStatus)}


@pytest.mark.parametrize("image_set_state", enum("ImageSetState"))
@pytest.mark.parametrize("status", enum("ImageSetWorkflowStatus"))
def test_await_copy_waits_fails_naming_the_status_or_goes_on(imaging, pacer, image_set_state, status):
    clock = FakeClock()
    st = submit(_prepare(imaging, "destination"), imaging, FakeSubmissions(), pacer, clock)
    st = await_copy(st, imaging, clock, backoff=BACKOFF)  # the first wait, no check: then the status check
    written = imaging.sets[DST]
    written.statuses[written.version] = (image_set_state, status, "the service's message")
    action, _ = verdict("await_copy", image_set_state, status)
    if action is Verdict.CONTINUE:
        assert await_copy(st, imaging, clock, backoff=BACKOFF).done
        return
    if action is Verdict.WAIT:  # the next status check after a callback wait
        waiting = await_copy(st, imaging, clock, backoff=BACKOFF)
        assert waiting.awaiting is not None and not waiting.done
        return
    with pytest.raises(AWAIT_ERRORS[action]) as caught:
        await_copy(st, imaging, clock, backoff=BACKOFF)
    if isinstance(caught.value, CopyFailed):
        assert status == "COPY_FAILED" and "the service's message" in caught.value.message
    else:
        assert status in caught.value.message


def test_the_documented_cases():
    # COPIED is the only status that completes a chunk, and only when the image set is not locked.
    done = [(s, w) for s in STATES for w in WORKFLOW_STATUSES if verdict("await_copy", s, w)[0] is Verdict.CONTINUE]
    assert done == [("ACTIVE", "COPIED")]
    # A study-wide update in flight is waited for, at both steps.
    for step in ("prepare", "await_copy"):
        assert verdict(step, "LOCKED", "UPDATING_FOR_STUDY_CONSISTENCY")[0] is Verdict.WAIT
    # The archive tier is no reason to refuse (a premise to verify, see tests/data/healthimaging/premises.json).
    assert verdict("prepare", "ACTIVE", "CREATED", "ARCHIVE_INSTANT_ACCESS")[0] is Verdict.CONTINUE
    # What the table does not know fails, naming it, instead of being guessed.
    assert verdict("prepare", "ACTIVE", "SOMETHING_NEW")[0] is Verdict.FAIL
    assert verdict("await_copy", "ACTIVE", "COPIED", "SOME_NEW_TIER")[0] is Verdict.FAIL
