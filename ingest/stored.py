"""A chunk as read back from an index version, without Chroma: what the answerer works with.

Kept apart from `ingest/index.py` (which needs chromadb) so that a serving process that loads a
version from its served copy (`ingest/index_copy.py`) never imports Chroma.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LIST_KEYS = ("sources", "docs", "phrasings", "covers", "topics")  # list metadata, stored as JSON strings


@dataclass
class StoredChunk:
    """A chunk as read back from the index."""

    chunk_id: str
    search_text: str
    meta: dict[str, Any]

    @property
    def doc_id(self) -> str:
        return str(self.meta.get("doc_id", ""))

    @property
    def text(self) -> str:
        return str(self.meta.get("text", ""))


def from_chroma_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out = dict(meta)
    for key in LIST_KEYS:
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                out[key] = [out[key]]
    return out
