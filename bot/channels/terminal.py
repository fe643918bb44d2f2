"""`qiuxue chat`: the dialogue core in the terminal. Buttons are shown numbered; type the number."""

from __future__ import annotations

import argparse
import getpass
import sys

from bot.config import Config
from bot.core.dialogue import Dialogue
from bot.core.messages import BUTTON, Button, Incoming, Outgoing


def render(reply: Outgoing, offset: int) -> tuple[str, list[Button]]:
    """The reply as terminal text, with its buttons numbered from offset+1."""
    buttons = [b for row in reply.buttons for b in row]
    lines = [reply.text]
    if buttons:
        lines.append("  ".join(f"[{offset + i + 1}] {b.label}" for i, b in enumerate(buttons)))
    if reply.link:
        lines.append(reply.link)
    return "\n".join(lines), buttons


def chat(dialogue: Dialogue, user_id: str, stdin=sys.stdin, stdout=sys.stdout) -> int:  # type: ignore[no-untyped-def]
    def show(replies: list[Outgoing]) -> list[Button]:
        shown: list[Button] = []
        for reply in replies:
            text, buttons = render(reply, len(shown))
            shown += buttons
            print(f"\n{text}", file=stdout, flush=True)
        return shown

    buttons = show(dialogue.handle(Incoming("terminal", user_id, "/start")))
    while True:
        print("\n> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        text = line.rstrip("\n")
        if text.strip() in ("/quit", "/exit"):
            return 0
        if text.strip().isdigit() and 0 < int(text) <= len(buttons):
            msg = Incoming("terminal", user_id, kind=BUTTON, button=buttons[int(text) - 1].data)
        else:
            msg = Incoming("terminal", user_id, text)
        buttons = show(dialogue.handle(msg))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="talk to the bot in this terminal (embedded defaults, no token)")
    p.add_argument("--user", default=None, help="conversation id (default: your login name)")
    p.set_defaults(func=cmd_chat)


def cmd_chat(cfg: Config, args: argparse.Namespace) -> int:
    from bot.smoke import serving_check
    from ingest.refresh import RefreshError, refresh
    from ingest.versions import live_version

    dialogue = Dialogue(cfg)
    if live_version(dialogue.store.sessions) is None:
        print("building the knowledge-base index (first run)…", file=sys.stderr)
        try:
            refresh(cfg, progress=True, candidate_check=serving_check)
        except RefreshError as exc:
            print(f"cannot build the index: {exc}", file=sys.stderr)
            return 1
    print("求学圆梦助手 — type a question; numbers press buttons; /quit to leave.", file=sys.stderr)
    return chat(dialogue, args.user or getpass.getuser())
