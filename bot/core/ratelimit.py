"""Per-key flood control: at most N events in a sliding window of S seconds (per process), bounded memory.

Used per worker (the dialogue) and per client address (console logins). Keys are kept in the order
they were last active; a key whose window has emptied is forgotten as soon as it reaches the front,
so memory follows the keys active in the last S seconds, not every key ever seen. `max_keys` caps
even that (a burst of more distinct keys than this forgets the least recently active first, which at
worst lets one of them send a little more than N — never blocks anyone wrongly).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

MAX_KEYS = 100_000  # ~200 bytes each with a short window: ≈ 20 MB at the very worst


class RateLimiter:
    def __init__(self, max_messages: int, per_seconds: float, clock=time.monotonic,  # type: ignore[no-untyped-def]
                 max_keys: int = MAX_KEYS) -> None:
        self.max, self.window, self.clock, self.max_keys = max_messages, per_seconds, clock, max(1, max_keys)
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Keys currently remembered."""
        return len(self._seen)

    def allow(self, key: str) -> bool:
        """True if this event may be handled now; the caller answers politely otherwise."""
        now = self.clock()
        with self._lock:
            self._forget_idle(now)
            seen = self._seen.get(key)
            if seen is None:
                seen = self._seen[key] = deque()
            self._seen.move_to_end(key)
            while seen and now - seen[0] > self.window:
                seen.popleft()
            if len(seen) >= self.max:
                return False
            seen.append(now)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return True

    def _forget_idle(self, now: float) -> None:
        """Drop keys from the front (least recently active) whose last event left the window."""
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest and now - oldest[-1] <= self.window:
                return
            self._seen.popitem(last=False)
