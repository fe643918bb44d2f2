"""Per-worker flood control: at most N messages in a sliding window of S seconds (per process)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    def __init__(self, max_messages: int, per_seconds: float, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.max, self.window, self.clock = max_messages, per_seconds, clock
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """True if this message may be handled now; the caller answers politely otherwise."""
        now = self.clock()
        with self._lock:
            seen = self._seen[key]
            while seen and now - seen[0] > self.window:
                seen.popleft()
            if len(seen) >= self.max:
                return False
            seen.append(now)
            return True
