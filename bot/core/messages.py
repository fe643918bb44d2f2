"""What goes into the dialogue core and what comes out, independent of any channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

TEXT, BUTTON, UNSUPPORTED, EDITED = "text", "button", "unsupported", "edited"


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # opaque to channels; at most 64 bytes (Telegram's callback_data limit)


@dataclass
class Incoming:
    """One thing a worker did: typed text, pressed a button, or sent something we cannot read."""

    channel: str  # "telegram", "terminal", "test" …
    user_id: str
    text: str = ""
    button: str | None = None  # Button.data when a button was pressed
    kind: str = TEXT  # text | button | edited | unsupported (sticker, photo, voice, file …)
    media: str = ""  # for unsupported: what it was ("sticker", "voice" …)
    display_name: str = ""


@dataclass
class Outgoing:
    """One reply: text, optional rows of quick-reply buttons, optional link."""

    text: str
    buttons: list[list[Button]] = field(default_factory=list)
    link: str | None = None
    meta: dict[str, object] = field(default_factory=dict)  # for the transcript (action, sources …)


@dataclass(frozen=True)
class Capabilities:
    """What a channel's platform can do; the core adapts to what it cannot (see bot/channels/base.py)."""

    buttons: bool = True                  # False: numbered options instead ("回复 1 …")
    push_window: timedelta | None = None  # a worker can be messaged only this long after they last wrote
    copies_media: bool = False            # can re-send a platform message (an agent's photo) as is
    max_text: int = 4096                  # longest text of one platform message
    # the platform's request can carry the answer if it is ready this soon (WeChat's passive reply): the
    # turn's replies wait this long in the outbox for the channel to take them (`Outbox.take_passive`)
    reply_hold: timedelta | None = None


def incoming_to_dict(msg: Incoming) -> dict[str, object]:
    return {"channel": msg.channel, "user_id": msg.user_id, "text": msg.text, "button": msg.button,
            "kind": msg.kind, "media": msg.media, "display_name": msg.display_name}


def incoming_from_dict(data: dict[str, object]) -> Incoming:
    return Incoming(str(data["channel"]), str(data["user_id"]), str(data.get("text") or ""),
                    str(data["button"]) if data.get("button") is not None else None,
                    str(data.get("kind") or TEXT), str(data.get("media") or ""), str(data.get("display_name") or ""))


def to_payload(reply: Outgoing) -> dict[str, object]:
    """A reply as JSON for the outbox (see `outgoing_from`)."""
    return {"text": reply.text, "buttons": [[[b.label, b.data] for b in row] for row in reply.buttons],
            "link": reply.link}


def outgoing_from(payload: dict[str, object]) -> Outgoing:
    rows = payload.get("buttons") or []
    return Outgoing(str(payload.get("text", "")),
                    [[Button(str(b[0]), str(b[1])) for b in row] for row in rows],  # type: ignore[union-attr]
                    str(payload["link"]) if payload.get("link") else None)
