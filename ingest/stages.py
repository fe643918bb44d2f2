"""Wall and CPU seconds per named stage of a job (the ingest benchmark's breakdown of a refresh)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageClock:
    """Accumulates wall-clock and process-CPU seconds per stage name, in the order stages first ran."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu

    def as_json(self) -> dict[str, dict[str, float]]:
        return {name: {"wall_s": round(self.wall[name], 3), "cpu_s": round(self.cpu[name], 3)} for name in self.wall}
