"""The seeded job set and copy-duration distribution both policies run.

Every job copies one small, distinct image set (one series, two single-frame instances) to a new image set, so each
job is exactly one ``CopyImageSet`` (far under the 1,000-frame quota: "copies" and "jobs" are the same count here;
chunking is covered by the functional and end-to-end tests). The emulator takes ``duration`` virtual seconds for a
job's copy, keyed by its source image set, so a job's copy lasts as long under either policy.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DurationDistribution:
    """Lognormal copy durations (virtual seconds): ``median * exp(sigma * Z)``, clipped to ``[low, high]``."""

    median: float = 60.0
    sigma: float = 0.6
    low: float = 10.0
    high: float = 900.0

    def sample(self, rng: random.Random) -> float:
        return min(self.high, max(self.low, rng.lognormvariate(math.log(self.median), self.sigma)))

    def describe(self) -> str:
        return (
            f"lognormal, median {self.median:g} s, sigma {self.sigma:g}, clipped to [{self.low:g} s, {self.high:g} s]"
        )

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    index: int
    job_id: str
    duration: float  # virtual seconds the emulator takes for this job's copy


def jobs(count: int, *, seed: int, distribution: DurationDistribution) -> list[Job]:
    """``count`` jobs with durations drawn from ``distribution``; the same ``(count, seed)`` gives the same jobs."""
    rng = random.Random(f"hicopy-bench/{seed}/{count}")
    return [Job(i, f"bench-{count}-{i:04d}", distribution.sample(rng)) for i in range(count)]
