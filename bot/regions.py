"""Places: recognise a province or city in a question, and know its province.

The gazetteer is data (`knowledge/dictionary/regions.yaml`). Whether the knowledge base *covers*
a place is not decided here: it comes from the `region` of the indexed documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from common.yamlio import read_yaml

NATIONAL = "全国"
NATIONAL_WORDS = ("全国", "国家", "national", "nationwide", "china")


@dataclass(frozen=True)
class Region:
    name: str
    kind: str  # province | municipality | city | county
    parent: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)  # other names, and signals (粤工惠 → 广东)


class Gazetteer:
    """Finds place names in text (longest alias first) and walks up to the province."""

    def __init__(self, regions: list[Region]) -> None:
        self.by_name = {r.name: r for r in regions}
        alias_to_name: dict[str, str] = {}
        for r in regions:
            for alias in (r.name, *r.aliases):
                alias_to_name.setdefault(alias.lower(), r.name)
        self._alias_to_name = alias_to_name
        words = sorted(alias_to_name, key=len, reverse=True)
        parts = [re.escape(w) if re.search(r"[\u3400-\u9fff]", w) else rf"\b{re.escape(w)}\b" for w in words]
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    @classmethod
    def load(cls, dictionary_dir: Path) -> Gazetteer:
        raw = read_yaml(dictionary_dir / "regions.yaml") or []
        return cls([Region(str(r["name"]), str(r.get("kind", "city")), r.get("parent"),
                           tuple(str(a) for a in [*(r.get("aliases") or []), *(r.get("signals") or [])]))
                    for r in raw])

    def find(self, text: str) -> list[str]:
        """Canonical names of the places named in `text`, in order of appearance, without repeats."""
        if self._pattern is None:
            return []
        found: list[str] = []
        for m in self._pattern.finditer(text):
            name = self._alias_to_name[m.group(0).lower()]
            if name not in found:
                found.append(name)
        return found

    def without_places(self, text: str) -> str:
        """`text` with every place name it mentions removed."""
        return self._pattern.sub("", text) if self._pattern is not None else text

    def canonical(self, name: str | None) -> str | None:
        """A user-given region ("广东省", "guangzhou") → its canonical name, if known."""
        if not name:
            return None
        if name.strip().lower() in NATIONAL_WORDS:
            return NATIONAL
        return self._alias_to_name.get(name.strip().lower())

    def resolve(self, text: str) -> str | None:
        """A place a worker typed: its exact name or alias, else the most specific place named in it."""
        return self.canonical(text) or self.most_specific(self.find(text))

    def lineage(self, name: str) -> list[str]:
        """The place, then its province (if any): 广州 → [广州, 广东]."""
        chain = [name]
        region = self.by_name.get(name)
        while region is not None and region.parent and region.parent not in chain:
            chain.append(region.parent)
            region = self.by_name.get(region.parent)
        return chain

    def most_specific(self, names: list[str]) -> str | None:
        """Of several places named, the most specific one (a city over its province)."""
        if not names:
            return None
        ancestors = {a for n in names for a in self.lineage(n)[1:]}
        specific = [n for n in names if n not in ancestors]
        return (specific or names)[0]
