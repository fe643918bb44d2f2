"""The two records ingestion passes around: a loaded `Document` and the `Chunk`s cut from it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Bump when chunking or the metadata layout changes: every document then counts as changed.
PIPELINE_VERSION = "4"


@dataclass
class Section:
    """A run of text under one heading path (e.g. ["补助标准", "2024年"])."""

    headings: list[str]
    text: str


@dataclass
class Document:
    """One unit of the knowledge base: a policy document, one FAQ entry, or an admin's file."""

    doc_id: str
    kind: str  # policy | faq | file
    path: str  # source file, relative to the knowledge root when possible
    meta: dict[str, Any]
    sections: list[Section] = field(default_factory=list)

    @property
    def title(self) -> str:
        return str(self.meta.get("title") or self.doc_id)

    @property
    def content_hash(self) -> str:
        payload = json.dumps(
            {"v": PIPELINE_VERSION, "kind": self.kind, "meta": self.meta,
             "sections": [[s.headings, s.text] for s in self.sections]},
            ensure_ascii=False, sort_keys=True, default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


@dataclass
class Chunk:
    """A retrievable passage: `text` is shown to workers, `search_text` is embedded and indexed."""

    chunk_id: str
    doc_id: str
    text: str
    search_text: str
    meta: dict[str, Any]


@dataclass
class LoadError:
    """A file that could not be read, and why (`rel` is the path as documents record it)."""

    path: str
    reason: str
    rel: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
