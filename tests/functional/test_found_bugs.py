"""Regression tests for handler bugs found while building the security suites, which belong to neither of their
checks (each was first committed as a strict xfail with a minimal reproduction, and now guards the fix). They drive
the handlers like the rest of this suite, on the security suite's image sets."""

from __future__ import annotations

import contextlib
from unittest import mock

from hicopy.adapters.state_table import DynamoSubmissionStore
from hicopy.errors import ImageSetConflict
from hicopy.handlers import await_copy, pace, prepare, submit
from tests.security.scenarios import PHI, _sibling, initial, phi_metadata
from tests.support.environment import aws_environment, task


def test_submit_that_died_copying_into_an_existing_destination_copies_once() -> None:
    with aws_environment() as env:
        emu, ds = env.emulator, env.datastore_id
        destination = emu.seed_image_set_from_metadata(ds, phi_metadata(PHI, seed=1))
        source = emu.seed_image_set_from_metadata(ds, _sibling(emu.metadata(ds, destination.image_set_id)), False)
        env.clock.t += 60  # the job arrives a minute after the image sets were created
        job = initial(
            env, "j", source={"imageSetId": source.image_set_id}, destination={"imageSetId": destination.image_set_id}
        )
        state = task(env, pace, task(env, prepare, job))
        env.clock.t += state["pace"]["waitSeconds"]
        with (
            mock.patch.object(DynamoSubmissionStore, "complete", side_effect=RuntimeError("Lambda timed out")),
            contextlib.suppress(RuntimeError),
        ):
            task(env, submit, state)  # CopyImageSet returned, the Lambda died before recording it
        for retry in range(1, 6):  # Step Functions retries ImageSetConflict with backoff
            try:
                again = task(env, submit, state, retry)
                break
            except ImageSetConflict:
                env.clock.t += 10
        env.clock.t += 20
        with contextlib.suppress(Exception):
            task(env, await_copy, again)
        assert len(emu.calls_to("CopyImageSet")) == 1, [
            (v["versionId"], v["ImageSetWorkflowStatus"]) for v in emu.versions(ds, destination.image_set_id)
        ]
