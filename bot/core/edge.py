"""What enters the core is cleaned once: storable text (see normalize.py) with personal numbers masked."""

from __future__ import annotations

from dataclasses import replace

from bot.core.messages import Incoming
from bot.core.normalize import storable
from bot.core.redact import redact


def clean_text(text: str | None) -> str:
    """Text from a worker or an agent as the core may keep it: storable, numbers masked."""
    return redact(storable(text))


def clean_incoming(msg: Incoming) -> Incoming:
    """The message with its text and display name cleaned, and its button data storable."""
    button = storable(msg.button) if msg.button is not None else None
    return replace(msg, text=clean_text(msg.text), display_name=clean_text(msg.display_name),
                   button=button, media=storable(msg.media), user_id=storable(msg.user_id))
