"""Query embeddings without the model when the text was embedded before: a bounded LRU, seeded.

The seeds are the live version's FAQ questions and phrasings, whose query vectors the snapshot
already holds (the same model, the same "query:" text): a worker who taps a suggested question or
types one word for word costs no model call. Other texts are kept, most recently used last, up to
`size` entries (about 1.5 KB each for a 384-dimensional model); the oldest is dropped first.
Keys are the exact text embedded, so a hit returns exactly the vector the model would.
Safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class QueryVectors:
    """text → query vector: seeded rows of a matrix, then a bounded LRU in front of `embed`."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], size: int,
                 seed_texts: list[str] | None = None, seed_vectors: np.ndarray | None = None) -> None:
        self._embed = embed
        self.size = max(0, size)
        self._seed_rows = {text: row for row, text in enumerate(seed_texts or [])}
        self._seed_vectors = seed_vectors
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.seed_hits = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._recent)

    def get(self, text: str) -> np.ndarray:
        """The query vector of `text` (computed by the model only if not seen)."""
        row = self._seed_rows.get(text)
        if row is not None and self._seed_vectors is not None:
            self.seed_hits += 1
            return self._seed_vectors[row]
        with self._lock:
            vec = self._recent.get(text)
            if vec is not None:
                self._recent.move_to_end(text)
                self.hits += 1
                return vec
        vec = self._embed([text])[0]  # outside the lock: other threads keep answering meanwhile
        vec.setflags(write=False)
        with self._lock:
            self.misses += 1
            if self.size:
                self._recent[text] = vec
                self._recent.move_to_end(text)
                while len(self._recent) > self.size:
                    self._recent.popitem(last=False)
        return vec

    def get_many(self, texts: list[str]) -> np.ndarray:
        """The query vectors of `texts`, one row each; the unseen ones embedded in one model call."""
        with self._lock:
            unseen = list(dict.fromkeys(t for t in texts if t not in self._seed_rows and t not in self._recent))
        if unseen:
            fresh = self._embed(unseen)
            with self._lock:
                self.misses += len(unseen)
                for text, vec in zip(unseen, fresh, strict=True):
                    vec.setflags(write=False)
                    self._recent[text] = vec
                    self._recent.move_to_end(text)
            found = dict(zip(unseen, fresh, strict=True))
        else:
            found = {}
        rows = [found[t] if t in found else self.get(t) for t in texts]
        with self._lock:
            while len(self._recent) > self.size:
                self._recent.popitem(last=False)
        return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)

    def clear(self) -> None:
        """Forget the texts seen (the seeds stay: they are the index's own vectors)."""
        with self._lock:
            self._recent.clear()
