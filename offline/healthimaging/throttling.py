"""Throttling: the published per-operation limits and the token bucket that enforces them on the emulator's clock."""

from __future__ import annotations

#: Published throttling limits (devguide "throttling limits"): operation -> (sustained tps, burst).
DEFAULT_THROTTLES: dict[str, tuple[float, float]] = {
    "CopyImageSet": (0.25, 1),
    "UpdateImageSetMetadata": (0.25, 1),
    "DeleteImageSet": (0.25, 1),
    "GetImageSet": (25, 50),
    "SearchImageSets": (25, 50),
    "ListImageSetVersions": (25, 50),
    "GetImageSetMetadata": (50, 100),
    "GetImageFrame": (1000, 2000),
    "StartDICOMImportJob": (1, 2),
    "GetDICOMImportJob": (25, 50),
    "ListDICOMImportJobs": (10, 20),
}


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, float(burst), now

    def take(self, now: float) -> bool:
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
