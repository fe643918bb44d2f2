"""Button data, encoded and decoded in one place: every press is parsed and validated here.

Button data is opaque to channels (at most 64 bytes, Telegram's limit). A press whose data does not
decode — forged, truncated, from an older version — decodes to `None`, and the core answers
"this button has expired" instead of failing. Numbers are ASCII digits within bounds ("²" or a
20-digit id never reach the database).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_ID = 2**31 - 1  # fits every INTEGER column on SQLite and PostgreSQL
_NUMBER = re.compile(r"(?:0|[1-9][0-9]{0,9})")  # ASCII only: str.isdigit() would accept "²"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ENTRY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,60}")
_PLACE = re.compile(r"[\u3400-\u9fffA-Za-z·]{1,16}|-")  # a place name, or "-" for "其他" (elsewhere)
LINE = "{line}"  # placeholder for the answer's transcript id, filled in once the reply is logged


def _number(text: str, upper: int = MAX_ID) -> int | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if value <= upper else None


@dataclass(frozen=True)
class Menu:
    action: Literal["check", "apply", "human", "help", "facts"]


@dataclass(frozen=True)
class Consent:
    given: bool


@dataclass(frozen=True)
class Lang:
    code: Literal["zh", "en"]


@dataclass(frozen=True)
class FieldAnswer:
    """An answer to an eligibility question: `index` into the field's buttons (bool: 1 yes, 0 no)."""

    field: str
    index: int


@dataclass(frozen=True)
class Back:
    """Go back one question of the eligibility check; `field` is the question it was pressed on."""

    field: str


@dataclass(frozen=True)
class Change:
    """Change one recorded fact (a button of /facts): ask its question again."""

    field: str


@dataclass(frozen=True)
class GuideStep:
    """The application guide: next/back, or a checklist document ticked (have) or not."""

    action: Literal["next", "back", "doc"]
    doc: int = 0
    have: bool = False


@dataclass(frozen=True)
class Vote:
    line: int
    up: bool


@dataclass(frozen=True)
class Pick:
    """One of the suggested FAQ questions ("你是不是想问…")."""

    entry: str


@dataclass(frozen=True)
class Place:
    """An answer to "你在哪个省/市？": a place name, or OTHER_PLACE (none of those offered)."""

    name: str


OTHER_PLACE = "-"


@dataclass(frozen=True)
class Staff:
    """A helpdesk agent's button on a ticket card: claim, resolve, or add the answer to the KB (yes/no)."""

    action: Literal["claim", "resolve", "kb"]
    ticket: int
    yes: bool = False


ButtonData = Menu | Consent | Lang | FieldAnswer | Back | Change | GuideStep | Vote | Pick | Place | Staff


def encode(data: ButtonData) -> str:
    match data:
        case Menu(action):
            return f"menu:{action}"
        case Consent(given):
            return f"consent:{int(given)}"
        case Lang(code):
            return f"lang:{code}"
        case FieldAnswer(field, index):
            return f"f:{field}:{index}"
        case Back(field):
            return f"b:{field}"
        case Change(field):
            return f"chg:{field}"
        case GuideStep("doc", doc, have):
            return f"apply:doc:{doc}:{int(have)}"
        case GuideStep(action):
            return f"apply:{action}"
        case Vote(line, up):
            return f"fb:{line}:{1 if up else -1}"
        case Pick(entry):
            return f"q:{entry}"
        case Place(name):
            return f"place:{name}"
        case Staff("kb", ticket, yes):
            return f"hd:kb:{ticket}:{int(yes)}"
        case Staff(action, ticket):
            return f"hd:{action}:{ticket}"
    raise TypeError(f"not button data: {data!r}")


def vote_template(up: bool) -> str:
    """👍/👎 data before the answer is logged; `fill_line` puts the transcript id in."""
    return f"fb:{LINE}:{1 if up else -1}"


def fill_line(data: str, line_id: int) -> str:
    return data.replace(LINE, str(line_id))


def decode(data: str | None) -> ButtonData | None:
    """The press, or None for anything that is not data this version made."""
    if not data or len(data.encode("utf-8", "surrogatepass")) > 64:
        return None
    kind, _, rest = data.partition(":")
    parts = rest.split(":")
    match kind, parts:
        case "menu", [("check" | "apply" | "human" | "help" | "facts") as action]:
            return Menu(action)
        case "consent", [("0" | "1") as given]:
            return Consent(given == "1")
        case "lang", [("zh" | "en") as code]:
            return Lang(code)
        case "f", [name, index] if _NAME.fullmatch(name) and (i := _number(index, 999)) is not None:
            return FieldAnswer(name, i)
        case "b", [name] if _NAME.fullmatch(name):
            return Back(name)
        case "chg", [name] if _NAME.fullmatch(name):
            return Change(name)
        case "apply", [("next" | "back") as action]:
            return GuideStep(action)
        case "apply", ["doc", doc, ("0" | "1") as have] if (d := _number(doc, 999)) is not None:
            return GuideStep("doc", d, have == "1")
        case "fb", [line, ("1" | "-1") as vote] if (n := _number(line)) is not None:
            return Vote(n, vote == "1")
        case "q", _ if _ENTRY.fullmatch(rest):
            return Pick(rest)
        case "place", [name] if _PLACE.fullmatch(name):
            return Place(name)
        case "hd", [("claim" | "resolve") as action, ticket] if (n := _number(ticket)) is not None:
            return Staff(action, n)
        case "hd", ["kb", ticket, ("0" | "1") as yes] if (n := _number(ticket)) is not None:
            return Staff("kb", n, yes == "1")
    return None
