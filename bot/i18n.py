"""Worker-facing strings in Chinese and English (`bot/strings.yaml`), looked up by key."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from common.yamlio import read_yaml

STRINGS_FILE = Path(__file__).with_name("strings.yaml")
LANGS = ("zh", "en")


@cache
def _strings() -> dict[str, dict[str, str]]:
    return read_yaml(STRINGS_FILE)


def t(key: str, lang: str = "zh", **values: object) -> str:
    """The string `key` in `lang` (Chinese if that language is missing), formatted with `values`."""
    entry = _strings()[key]
    text = entry.get(lang) or entry["zh"]
    return text.format(**values) if values else text
