"""Per-worker flood control: at most N messages in a sliding window of S seconds, across every process.

The window is the list of the worker's recent message times, kept on the worker's conversation row
(`Conversation.recent`). Each message already reads that row under its lock and writes it back in
its one transaction (`Dialogue.turn`), so every `qiuxue serve` process sharing the database sees the
same window, with no extra query and no extra service (see README, "Several processes"). Times are
wall-clock seconds (`time.time`): processes compare each other's stamps.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
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
