"""Deleting the source (the DeleteSource task, post-import delete-after only): once every chunk was COPIED, delete the
non-primary source image set, paced like a copy (its own DeleteImageSet slot and turn)."""

from __future__ import annotations

from hicopy.clock import Clock
from hicopy.domain.pacing import Pacer, take_turn
from hicopy.domain.ports import ImageSetDeleterPort
from hicopy.domain.state import SourceDeletion, WorkflowState
from hicopy.errors import InvalidRequest


def delete_source(state: WorkflowState, deleter: ImageSetDeleterPort, pacer: Pacer, clock: Clock) -> WorkflowState:
    """Delete the source image set after every chunk was COPIED (post-import delete-after). Only then."""
    if state.sourceDeletion is None or state.sourceDeletion.status != "PENDING" or not state.done:
        raise InvalidRequest("DeleteSource ran before the copy completed")
    take_turn(state, pacer, clock)
    deleter.delete_image_set(state.job.datastoreId, state.job.source.imageSetId)
    return state.model_copy(update={"sourceDeletion": SourceDeletion(status="DELETED"), "pace": None})
