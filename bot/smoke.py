"""The serving smoke check: a candidate index version is loaded and asked exactly as a bot would.

`ingest.refresh` builds a version and, before it goes live, calls the check it was given; this
one is what every bot-side caller (the CLI, Telegram's /kb_refresh, the terminal) passes. It loads
the candidate as a `Snapshot`, composes the answer of every entry (FAQ and passage, in Chinese and
English), asks one FAQ question, one passage title and the probe query in each place the
candidate covers and each place with rules, and runs each place's eligibility check and guide.
Any exception means the version would crash the bot: it never becomes live.
"""

from __future__ import annotations

from bot.answering import Answerer
from bot.eligibility import Rules
from bot.guides import load_guides
from bot.regions import Gazetteer
from bot.retrieval import Snapshot, snapshot_of
from bot.text import Tokenizer
from common.settings import Config
from ingest.embedders import Embedder
from ingest.vector_cache import VectorCache
from ingest.versions import KbVersion


class FixedKnowledge:
    """Stands in for LiveKnowledge: always the candidate's snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def current(self, fresh: bool = False) -> Snapshot:
        return self.snapshot


def serving_check(cfg: Config, candidate: KbVersion, embedder: Embedder) -> int:
    """Load and probe `candidate`; returns the number of probes; raises whatever the bot would raise."""
    dictionary = cfg.path(cfg.knowledge.dictionary_dir)
    tokenizer = Tokenizer(dictionary)
    snap = snapshot_of(cfg, candidate, tokenizer, VectorCache(cfg.data_path / "cache"), embedder)
    answerer = Answerer(cfg, embedder, knowledge=FixedKnowledge(snap))  # type: ignore[arg-type]
    rules = Rules(cfg.path(cfg.knowledge.rules_dir), Gazetteer.load(dictionary))
    load_guides(cfg.path(cfg.knowledge.guides_dir))
    probes = 0
    for doc_id in dict.fromkeys(c.doc_id for c in snap.chunks):
        for lang in ("zh", "en"):
            if answerer.answer_entry(doc_id, lang) is None:
                raise RuntimeError(f"entry {doc_id} cannot be answered")
            probes += 1
    faq = next((c for c in snap.chunks if c.meta.get("kind") == "faq"), None)
    passage = next((c for c in snap.chunks if c.meta.get("kind") != "faq"), None)
    questions = [str(c.meta.get("question") or c.meta.get("title") or "") for c in (faq, passage) if c]
    probe = cfg.index.probe_query
    places = [None, *sorted(snap.covered), *sorted(rules.by_place)]
    for place in dict.fromkeys(places):
        for question in (*questions, probe):
            answerer.ask(question, place)
            probes += 1
        if place:
            rules.check({"region": place})
    return probes
