"""The topic signal: does the question read like the questions of the top FAQ entry's topic, anywhere?

Every FAQ entry names the topic(s) it answers (`topics:`, from `dictionary/topics.yaml`: amount,
documents, window …). Sibling entries of one place (amount ↔ documents, window ↔ conditions) look
alike to an embedding of the question; pooled over *all* places, the phrasings of one topic are many
more examples of how workers ask it. `topic_margin` is the best similarity of the question to a
phrasing of an entry sharing the top entry's topic (any place) minus the best to a phrasing of an
entry of another topic (an entry with several topics counts for each); the learned decision (bot/decision.py) weighs it. Topics are data; this
module only groups the phrasing rows by them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def rows_by_topic(faq_topics: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    """Topic → indices of the FAQ phrasing rows whose entry answers it (`faq_topics[row]`: that row's topics)."""
    rows: dict[str, list[int]] = {}
    for row, topics in enumerate(faq_topics):
        for topic in topics:
            rows.setdefault(str(topic), []).append(row)
    return {topic: np.array(found, dtype=np.intp) for topic, found in rows.items()}


def topic_margin(similarities: np.ndarray, topic_rows: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> float:
    """Best phrasing similarity within the entry's topics minus the best within every other topic.

    `similarities[row]`: the question's cosine to FAQ phrasing row `row`. 0.0 for a passage, an entry
    without topics, or when no other topic exists to compare with.
    """
    own = {str(t) for t in meta.get("topics") or []} if meta.get("kind") == "faq" else set()
    if not own:
        return 0.0
    best = {t: float(similarities[rows].max()) for t, rows in topic_rows.items() if len(rows)}
    mine = [v for t, v in best.items() if t in own]
    other = [v for t, v in best.items() if t not in own]
    return max(mine) - max(other) if mine and other else 0.0
