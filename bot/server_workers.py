"""`qiuxue serve --workers N`: N serving processes of the one app on one port, kept running.

Each process is a plain `qiuxue serve --slot K` (K = 0 … N-1) that binds the port with
SO_REUSEPORT, so the kernel spreads connections over them; they share PostgreSQL (and a Chroma
server, `index.mode: http`). Slot 0 is the primary: only it polls Telegram, sets the webhook and
re-announces tickets. A process that dies is started again in its slot (its slot name lets it
mark only its own unfinished sends `uncertain`); one that keeps dying at start-up stops them all.
SIGTERM/SIGINT stop every process and wait for them.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
QUICK_DEATH_SECONDS = 20.0  # a process that exits sooner than this after starting failed to start …
MAX_QUICK_DEATHS = 3        # … this many times in a row: the configuration is wrong, stop everything


def slot_name(host: str, port: int, slot: int) -> str:
    """The owner name a slot's outbox claims carry: stable across restarts of that slot on this machine."""
    return f"{socket.gethostname()}:{port}/{slot}"


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port that sibling processes may bind too (the kernel balances accepts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    """Starts `count` processes from `command(slot)`, restarts the ones that die, stops them all on a signal."""

    def __init__(self, command: Callable[[int], list[str]], count: int) -> None:
        self.command, self.count = command, count
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.quick_deaths: dict[int, int] = dict.fromkeys(range(count), 0)
        self.stopping = threading.Event()

    def _start(self, slot: int) -> None:
        self.procs[slot] = subprocess.Popen(self.command(slot))
        self.started[slot] = time.monotonic()
        log.warning("serving process %d started (pid %d)", slot, self.procs[slot].pid)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        for slot in range(self.count):
            self._start(slot)
        code = 0
        try:
            while not self.stopping.wait(0.5):
                for slot, proc in list(self.procs.items()):
                    if (status := proc.poll()) is None:
                        continue
                    lived = time.monotonic() - self.started[slot]
                    self.quick_deaths[slot] = self.quick_deaths[slot] + 1 if lived < QUICK_DEATH_SECONDS else 0
                    if self.quick_deaths[slot] >= MAX_QUICK_DEATHS:
                        log.error("serving process %d keeps exiting at start (status %s); stopping", slot, status)
                        return status or 1
                    log.warning("serving process %d (pid %d) exited with status %s; starting it again",
                                slot, proc.pid, status)
                    self._start(slot)
        finally:
            self.stop()
        return code

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
