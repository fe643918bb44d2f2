"""Application guides (`knowledge/guides/*.yaml`): a place's steps and its document checklist."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.yamlio import read_yaml


@dataclass
class Guide:
    region: str
    doc: str
    sources: list[str]
    steps: list[dict[str, str]]
    documents: list[dict[str, str]]
    covers: list[str] = field(default_factory=list)

    def step_text(self, i: int, lang: str) -> tuple[str, str]:
        step = self.steps[i]
        en = lang == "en"
        return (step.get("title_en") if en and step.get("title_en") else step["title"],
                step.get("text_en") if en and step.get("text_en") else step["text"])

    def document_name(self, i: int, lang: str) -> str:
        d = self.documents[i]
        return d.get("name_en") if lang == "en" and d.get("name_en") else d["name"]


def load_guides(guides_dir: Path) -> dict[str, Guide]:
    """Guides by place (a guide's own region and any places it `covers`)."""
    guides: dict[str, Guide] = {}
    for path in sorted(guides_dir.glob("*.yaml")):
        data: dict[str, Any] = read_yaml(path)
        guide = Guide(str(data["region"]), str(data.get("doc", "")), [str(s) for s in data.get("sources") or []],
                      list(data.get("steps") or []), list(data.get("documents") or []),
                      [str(c) for c in data.get("covers") or []])
        for place in (guide.region, *guide.covers):
            guides[place] = guide
    return guides
