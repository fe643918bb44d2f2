"""An in-process channel for tests and benchmarks (errbot's test backend is the model).

    worker = InProcessChat(dialogue, "u1")
    worker.say("广东能补多少钱")        # → list of Outgoing
    worker.press("👍 有用")            # presses a button of the last replies by its label
"""

from __future__ import annotations

from bot.core.dialogue import Dialogue
from bot.core.messages import BUTTON, UNSUPPORTED, Button, Incoming, Outgoing


class InProcessChat:
    def __init__(self, dialogue: Dialogue, user_id: str, channel: str = "test") -> None:
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

    @property
    def buttons(self) -> list[Button]:
        return [b for reply in self.last for row in reply.buttons for b in row]

    def press(self, label: str) -> list[Outgoing]:
        """Press the button of the last replies whose label contains `label`."""
        matches = [b for b in self.buttons if label in b.label]
        if not matches:
            raise AssertionError(f"no button {label!r} in {[b.label for b in self.buttons]}")
        return self._send(Incoming(self.channel, self.user_id, kind=BUTTON, button=matches[0].data))

    @property
    def text(self) -> str:
        """All text of the last replies."""
        return "\n".join(r.text for r in self.last)
