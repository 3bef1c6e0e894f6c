"""Prepare: which jobs are refused or retried before anything is copied."""

import pytest

from hicopy.domain.planning import prepare
from hicopy.errors import ImageSetConflict, InvalidRequest, StaleVersion
from tests.unit.workflow_support import DS, SRC, state


def test_unconfigured_datastore_is_refused(imaging):
    with pytest.raises(InvalidRequest, match="not one this orchestrator is configured for"):
        prepare(state(), imaging, allowed_datastores=frozenset({"f" * 32}), frame_limit=1000)


def test_pinned_stale_version_is_terminal(imaging):
    with pytest.raises(StaleVersion, match="versionId 1 is not the latest version \\(2\\)"):
        prepare(
            state(source={"imageSetId": SRC, "versionId": "1"}),
            imaging,
            allowed_datastores=frozenset({DS}),
            frame_limit=1000,
        )


def test_locked_source_is_a_retryable_conflict(imaging):
    imaging.sets[SRC].state, imaging.sets[SRC].status = "LOCKED", "UPDATING"
    with pytest.raises(ImageSetConflict):
        prepare(state(), imaging, allowed_datastores=frozenset({DS}), frame_limit=1000)
