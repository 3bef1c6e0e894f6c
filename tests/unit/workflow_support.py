"""The copy workflow's unit tests share these: a job's initial state, and the IDs it uses."""

from hicopy.domain.backoff import Backoff, max_attempts_for
from hicopy.domain.job import Trigger, parse_job
from hicopy.domain.state import WorkflowState

DS, SRC, DST = "a" * 32, "b" * 32, "c" * 32
S1 = "1.2.840.9"


# The shipped polling defaults (5 s x2 up to 120 s, the MaxAttempts of a 12 h budget).
BACKOFF = Backoff(first=5, rate=2.0, cap=120, max_attempts=max_attempts_for(43_200, 5, 2.0, 120))


def state(**job):
    j = parse_job({"jobId": "job-1", "datastoreId": DS, "source": {"imageSetId": SRC}, **job})
    return WorkflowState(job=j, trigger=Trigger(type="sqs"), receivedAt="2026-11-27T00:00:00.000Z")
