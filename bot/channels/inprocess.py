"""An in-process channel for tests and benchmarks (errbot's test backend is the model).

    worker = InProcessChat(dialogue, "u1")
    worker.say("广东能补多少钱")        # → list of Outgoing
    worker.press("👍 有用")            # presses a button of the last replies by its label

`InProcessChannel` is the same worker side as a hub channel: registered with a `Hub`, it receives
pushes (an agent's reply, queue news) in `pushed[user_id]`, as a phone would.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from bot.channels.base import Capabilities, PermanentFailure, PushOnly, outgoing_from
from bot.core.dialogue import Dialogue
from bot.core.messages import BUTTON, UNSUPPORTED, Button, Incoming, Outgoing
from bot.core.outbox import Claimed

CHANNEL = "test"


class InProcessChannel(PushOnly):
    name = CHANNEL

    def __init__(self, capabilities: Capabilities | None = None, refuse: set[str] | None = None) -> None:
        self.capabilities = capabilities or Capabilities()
        self.pushed: dict[str, list[Outgoing]] = defaultdict(list)
        self.refuse = refuse or set()  # user ids whose phone refuses messages (blocked the bot)
        self.arrived = asyncio.Event()

    async def send(self, item: Claimed) -> str:
        if item.address in self.refuse:
            raise PermanentFailure("the worker blocked the bot")
        self.pushed[item.address].append(outgoing_from(item.payload))
        self.arrived.set()
        return f"test-{item.id}"


class InProcessChat:
    def __init__(self, dialogue: Dialogue, user_id: str, channel: str = CHANNEL) -> None:
        self.dialogue, self.user_id, self.channel = dialogue, user_id, channel
        self.last: list[Outgoing] = []
        self.history: list[Outgoing] = []

    def _send(self, msg: Incoming) -> list[Outgoing]:
        self.last = self.dialogue.handle(msg)
        self.history += self.last
        return self.last

    def say(self, text: str) -> list[Outgoing]:
        return self._send(Incoming(self.channel, self.user_id, text))

    def send_media(self, media: str) -> list[Outgoing]:
        return self._send(Incoming(self.channel, self.user_id, kind=UNSUPPORTED, media=media))

    def press_data(self, data: str) -> list[Outgoing]:
        """Press a button by its raw data (forged or stale data included)."""
        return self._send(Incoming(self.channel, self.user_id, kind=BUTTON, button=data))

    @property
    def buttons(self) -> list[Button]:
        return [b for reply in self.last for row in reply.buttons for b in row]

    def press(self, label: str) -> list[Outgoing]:
        """Press the button of the last replies whose label contains `label`."""
        matches = [b for b in self.buttons if label in b.label]
        if not matches:
            raise AssertionError(f"no button {label!r} in {[b.label for b in self.buttons]}")
        return self.press_data(matches[0].data)

    @property
    def text(self) -> str:
        """All text of the last replies."""
        return "\n".join(r.text for r in self.last)
