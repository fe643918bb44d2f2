"""What goes into the dialogue core and what comes out, independent of any channel."""

from __future__ import annotations

from dataclasses import dataclass, field

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
