"""`qiuxue chat`: the dialogue core in the terminal, a channel without buttons (the core numbers the options).

Type a question; type a number to choose an option; `/quit` leaves. Messages pushed later (a helpdesk
agent's reply, queue news) are printed as they arrive: the hub's delivery loop runs in a background
thread and this channel's `send` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import threading
from typing import Any, TextIO

from bot.channels.base import Capabilities, PushOnly, outgoing_from
from bot.core.messages import Incoming, Outgoing
from bot.core.outbox import Claimed
from common.settings import Settings

CHANNEL = "terminal"
CAPABILITIES = Capabilities(buttons=False, max_text=100_000)


class TerminalChannel(PushOnly):
    """Pushes for the terminal's worker are printed; replies come back from `Dialogue.handle` directly."""

    name = CHANNEL
    capabilities = CAPABILITIES

    def __init__(self, stdout: TextIO) -> None:
        self.stdout = stdout
        self._lock = threading.Lock()

    def show(self, replies: list[Outgoing]) -> None:
        with self._lock:
            for reply in replies:
                print(f"\n{reply.text}", file=self.stdout, flush=True)

    async def send(self, item: Claimed) -> str:
        self.show([outgoing_from(item.payload)])
        return "printed"


def chat(dialogue: Any, user_id: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """The chat loop (the dialogue must know this channel has no buttons)."""
    dialogue.capabilities[CHANNEL] = CAPABILITIES
    channel = TerminalChannel(stdout)
    channel.show(dialogue.handle(Incoming(CHANNEL, user_id, "/start")))
    while True:
        print("\n> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        text = line.rstrip("\n")
        if text.strip() in ("/quit", "/exit"):
            return 0
        channel.show(dialogue.handle(Incoming(CHANNEL, user_id, text)))


def _relay_in_background(dialogue: Any, channel: TerminalChannel) -> None:
    """Deliver pushes for this terminal (agent replies …) while the chat loop reads input."""
    from bot.core.hub import Hub

    hub = Hub(dialogue)
    hub.register(channel)

    async def run() -> None:
        await hub.start()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(run()), name="qiuxue-terminal-relay", daemon=True).start()


def cmd_chat(cfg: Settings, args: argparse.Namespace) -> int:
    from bot.core.dialogue import Dialogue
    from bot.kb_admin import KbAdmin

    if not KbAdmin(cfg).ensure_index(progress=True):
        return 1
    dialogue = Dialogue(cfg, capabilities={CHANNEL: CAPABILITIES})
    _relay_in_background(dialogue, TerminalChannel(sys.stdout))
    print("求学圆梦助手 — type a question; numbers choose options; /quit to leave.", file=sys.stderr)
    return chat(dialogue, args.user or getpass.getuser())
