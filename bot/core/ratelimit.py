"""Flood control: at most N events in a sliding window of S seconds.

One rule (`SlidingWindow`), two ways to keep the window:
- `SlidingWindow.admit(recent)` judges a window the caller stores itself. The dialogue keeps each worker's recent
  message times on the worker's conversation row (`Conversation.recent`): each message already reads
  that row under its lock and writes it back in its one transaction (`Dialogue.turn`), so every
  `qiuxue serve` process sharing the database sees the same window, with no extra query and no extra
  service (see README, "Several processes").
- `KeyedWindows.allow(key)` keeps windows in this process's memory, per key (console logins per client address).
  Keys are kept in the order they were last active; a key whose window has emptied is forgotten as soon
  as it reaches the front, so memory follows the keys active in the last S seconds, and `max_keys` caps
  even that (a burst of more distinct keys forgets the least recently active first: at worst one of
  them gets a little more than N, nobody is blocked wrongly).

Times are wall-clock seconds (`time.time`): processes compare each other's stamps.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 100_000  # ~200 bytes each with a short window: ≈ 20 MB at the very worst


class SlidingWindow:
    """At most `max_messages` in any `per_seconds`, judged on a window of times the caller keeps."""

    def __init__(self, max_messages: int, per_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.max, self.window, self.clock = max_messages, per_seconds, clock

    def admit(self, recent: list[float]) -> tuple[bool, list[float]]:
        """(may this message be handled now?, the window to store back). A refused message is not counted;
        the caller answers it politely."""
        now = self.clock()
        kept = [float(t) for t in recent if now - float(t) <= self.window]
        if len(kept) >= self.max:
            return False, kept
        return True, [*kept, round(now, 3)]


class KeyedWindows(SlidingWindow):
    """The same rule with the windows in this process's memory, one per key, bounded (see the module)."""

    def __init__(self, max_messages: int, per_seconds: float, clock: Callable[[], float] = time.time,
                 max_keys: int = MAX_KEYS) -> None:
        super().__init__(max_messages, per_seconds, clock)
        self.max_keys = max(1, max_keys)
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Keys currently remembered by `allow`."""
        return len(self._seen)

    def allow(self, key: str) -> bool:
        """True if this event may be handled now (window kept in memory); the caller answers politely otherwise."""
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
