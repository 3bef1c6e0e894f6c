"""What Prepare and AwaitCopy do with each HealthImaging status: one table, every value of the model.

The values are those of botocore's ``medical-imaging`` model (``ImageSetState``, ``ImageSetWorkflowStatus``,
``StorageTier``); a test iterates the model's enums, so a status the service adds fails the tests until it has a row
here. Each row says, for the two tasks that read an image set's status:

- **Prepare** reads the *latest* version of the source and of the destination: ``WAIT`` (a write is running: retried
  as a conflict, bounded), ``FAIL`` (the job cannot be planned; the failure names the status) or ``CONTINUE``.
- **AwaitCopy** reads the *version this chunk's copy writes*: ``WAIT`` (still copying: the status polling),
  ``FAIL`` (the failure names the status; ``COPY_FAILED`` carries the service's message) or ``CONTINUE`` (copied).

An image set whose *state* is ``LOCKED`` is always waited for (a write is running, whatever the status says), and
``DELETED`` always fails; a status the table does not know fails, naming it, rather than guess.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Verdict(Enum):
    WAIT = "wait"
    FAIL = "fail"
    CONTINUE = "continue"


class Handling(NamedTuple):
    prepare: Verdict
    await_copy: Verdict
    why: str


W, F, C = Verdict.WAIT, Verdict.FAIL, Verdict.CONTINUE

#: ImageSetWorkflowStatus -> (Prepare, AwaitCopy).
WORKFLOW_STATUSES: dict[str, Handling] = {
    "CREATED": Handling(C, F, "an imported or created version; never what a copy writes"),
    "COPYING": Handling(W, W, "a copy into this image set is running"),
    "COPYING_WITH_READ_ONLY_ACCESS": Handling(W, W, "a copy out of this image set is running (it is locked)"),
    "COPIED": Handling(C, C, "a copy completed"),
    "COPY_FAILED": Handling(C, F, "a copy failed; the version keeps the content from before it"),
    "UPDATING": Handling(W, W, "a metadata update is running"),
    "UPDATING_FOR_STUDY_CONSISTENCY": Handling(W, W, "a study-wide update (includeStudyImageSets) is running"),
    "UPDATED": Handling(C, F, "a metadata update completed; the awaited version was not written by our copy"),
    "UPDATE_FAILED": Handling(C, F, "a metadata update failed; the version keeps the content from before it"),
    "DELETING": Handling(F, F, "the image set is being deleted"),
    "DELETED": Handling(F, F, "the image set is deleted"),
    "IMPORTING": Handling(W, F, "an import into this image set is running; the awaited version is an import's"),
    "IMPORTED": Handling(C, F, "an import completed; the awaited version was not written by our copy"),
    "IMPORT_FAILED": Handling(F, F, "the latest version is a failed import: check the image set before copying"),
}

#: ImageSetState -> (Prepare, AwaitCopy), applied before the workflow status.
STATES: dict[str, Handling] = {
    "ACTIVE": Handling(C, C, "no write is running: the workflow status decides"),
    "LOCKED": Handling(W, W, "a write is running"),
    "DELETED": Handling(F, F, "the image set is deleted"),
}

#: GetImageSet ``storageTier`` -> (Prepare, AwaitCopy). Both tiers are read in milliseconds ("instant access"); that
#: CopyImageSet copies from ARCHIVE_INSTANT_ACCESS like from FREQUENT_ACCESS is a premise (tests/data/healthimaging/
#: premises.json), so the tier is carried in the logs, never a reason to refuse.
STORAGE_TIERS: dict[str, Handling] = {
    "FREQUENT_ACCESS": Handling(C, C, "the default tier"),
    "ARCHIVE_INSTANT_ACCESS": Handling(C, C, "moved after 30 days without access; still read instantly"),
}

_UNKNOWN = Handling(F, F, "a status this version of the orchestrator does not know")


def verdict(step: str, state: str, workflow_status: str, storage_tier: str | None = None) -> tuple[Verdict, str]:
    """(what ``step`` — "prepare" or "await_copy" — does, why) for an image set in this state and status."""
    rows = [STATES.get(state, _UNKNOWN), WORKFLOW_STATUSES.get(workflow_status, _UNKNOWN)]
    if storage_tier is not None:
        rows.append(STORAGE_TIERS.get(storage_tier, _UNKNOWN))
    verdicts = [(getattr(row, step), row.why) for row in rows]
    for wanted in (Verdict.FAIL, Verdict.WAIT):  # the strictest row wins: a failure, then a wait
        for found, why in verdicts:
            if found is wanted:
                return found, why
    return Verdict.CONTINUE, verdicts[1][1]
