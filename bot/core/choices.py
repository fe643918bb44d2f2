"""Numbered options for channels without buttons: "回复 1 …" in the text, and a typed digit mapped back.

The button data of the options shown last is kept on the conversation (`Conversation.choices`), so a
worker can answer "2" after a restart, or days later. Used by the core for every channel whose
`Capabilities.buttons` is False (the terminal, WeChat).
"""

from __future__ import annotations

import re

from bot.core.messages import Button, Outgoing
from bot.i18n import t

_DIGITS = re.compile(r"\s*([0-9]{1,2})\s*[.。、)）]?\s*")


def render(replies: list[Outgoing], lang: str) -> tuple[list[Outgoing], list[str]]:
    """The replies with their buttons as numbered lines (numbering runs on across replies), and their data."""
    shown: list[str] = []
    out: list[Outgoing] = []
    for reply in replies:
        buttons: list[Button] = [b for row in reply.buttons for b in row]
        lines = [reply.text] if reply.text else []
        if buttons:
            lines.append(t("numbered_intro", lang))
            lines += [f"{len(shown) + i + 1}. {b.label}" for i, b in enumerate(buttons)]
            shown += [b.data for b in buttons]
        if reply.link:
            lines.append(reply.link)
        out.append(Outgoing("\n".join(lines), [], None, reply.meta))
    return out, shown


def picked(text: str, choices: list[str]) -> tuple[int | None, str | None]:
    """(the number typed, the button data it stands for); (None, None) if the text is not a bare number."""
    match = _DIGITS.fullmatch(text)
    if not match:
        return None, None
    n = int(match.group(1))
    return n, (choices[n - 1] if 0 < n <= len(choices) else None)
