"""Grounded answers: find the passage, answer briefly with its source, or refuse and offer the helpdesk.

Order of decisions for one question:
1. input that is empty, not text, or too long gets a clear reply (no retrieval);
2. places: the question's own places, else the conversation's region. A place with no rules of
   its own is never answered with another place's rule as if it were the worker's;
3. hybrid retrieval ranks passages and curated FAQ entries together (BM25 + dense + FAQ phrasings,
   fused; the worker's own place first);
4. the top one is used if confident enough: a FAQ entry whose phrasing is close enough
   (`retrieval.faq_min_similarity`), a passage close enough (`retrieval.min_dense`), enough of
   the question's words known to the knowledge base (`retrieval.min_coverage`), and a clear lead
   over the best passage of another document (`retrieval.min_margin`) — close calls are refused;
5. otherwise `no_answer` with the helpdesk offer. Thresholds are calibrated by `qiuxue eval`.
A source marked `gap: true` (what we do not cover) always yields `no_answer`, with its explanation.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.decision import DecisionModel
from bot.i18n import t
from bot.regions import NATIONAL, Gazetteer
from bot.retrieval import Hit, LiveKnowledge, Snapshot, search
from bot.text import Tokenizer, detect_language
from common.settings import Config
from ingest.embedders import Embedder
from ingest.stored import StoredChunk

ANSWER, NO_ANSWER = "answer", "no_answer"
READABLE = re.compile(r"[\w\u3400-\u9fff]")
SENTENCE = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]*")


@dataclass
class Source:
    id: str
    title: str
    region: str
    ref: str


@dataclass
class Answer:
    question: str
    answer: str
    action: str
    region: str | None
    sources: list[Source] = field(default_factory=list)
    latency_ms: float = 0.0
    lang: str = "zh"
    ranked: list[str] = field(default_factory=list)  # doc/FAQ ids in retrieval order (for eval)
    not_covered: bool = False  # the knowledge base has no rules for the worker's place or topic
    suggestions: list[tuple[str, str]] = field(default_factory=list)  # (FAQ id, question) to choose from
    signals: dict[str, float] = field(default_factory=dict)  # what the decision was based on
    related: list[tuple[str, str]] = field(default_factory=list)  # (FAQ id, question) shown under an answer

    def as_json(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "action": self.action,
                "region": self.region, "sources": [asdict(s) for s in self.sources],
                "latency_ms": round(self.latency_ms, 1),
                "related": [{"id": i, "question": q} for i, q in self.related]}


@dataclass
class Thresholds:
    faq: float
    dense: float
    coverage: float
    margin: float = 1.0

    @classmethod
    def from_config(cls, cfg: Config) -> Thresholds:
        r = cfg.retrieval
        return cls(float(r.faq_min_similarity), float(r.min_dense), float(r.min_coverage), float(r.min_margin))


@dataclass
class Places:
    """Where the question is about: the regions to search and what to tell the worker."""

    region: str | None  # the place the answer is for (None: not said)
    allowed: set[str] | None  # document regions to search (None: all)
    uncovered: list[str]  # places named that the knowledge base has nothing for
    fallback_parent: str | None = None  # uncovered place whose province is covered


@dataclass
class Retrieval:
    """What retrieval found for one question, before any threshold is applied."""

    question: str
    lang: str
    snap: Snapshot | None = None
    places: Places | None = None
    tokens: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    coverage: float = 0.0
    refusal: tuple[str, dict[str, object]] | None = None  # a reply that needs no retrieval
    mode: str = "hybrid"
    query_vec: Any = None  # the question's embedding (reused when asking for the place)

    @property
    def signals(self) -> dict[str, float]:
        top = self.hits[0] if self.hits else None
        return {"faq": top.faq if top else 0.0, "dense": top.dense if top else 0.0,
                "bm25": top.bm25 if top else 0.0, "coverage": self.coverage, "margin": self.margin}

    @property
    def margin(self) -> float:
        """How far the top passage leads the best one from another document (fused score ratio)."""
        if not self.hits:
            return 0.0
        top = self.hits[0]
        runner = next((h for h in self.hits[1:] if h.chunk.doc_id != top.chunk.doc_id), None)
        return top.score / runner.score if runner and runner.score > 0 else 10.0

    @property
    def ranked(self) -> list[str]:
        """Document/FAQ ids in the order retrieval ranked them."""
        return list(dict.fromkeys(h.chunk.doc_id for h in self.hits))


def decide(r: Retrieval, th: Thresholds, model: DecisionModel | None = None) -> StoredChunk | None:
    """The chunk to answer from, or None when not confident enough.

    With a trained decision model (hybrid mode), its probability that the top-1 is right decides;
    otherwise the hand-set thresholds do.
    """
    if not r.hits:
        return None
    if model is not None and r.mode == "hybrid":
        return r.hits[0].chunk if model.accepts(r) else None
    if r.coverage < th.coverage or r.margin < th.margin:
        return None
    top = r.hits[0]
    if r.mode == "bm25":
        return top.chunk
    if top.chunk.meta.get("kind") == "faq":
        return top.chunk if top.faq >= th.faq else None
    return top.chunk if top.dense >= th.dense else None


def resolve_places(snap: Snapshot, gazetteer: Gazetteer, question: str, context_region: str | None) -> Places:
    named = gazetteer.find(question)
    if not named:
        ctx = gazetteer.canonical(context_region) or context_region
        named = [ctx] if ctx and ctx != NATIONAL else []
        if ctx == NATIONAL:
            return Places(NATIONAL, {NATIONAL}, [])
    if not named:  # nobody said where: only national rules apply to everyone
        return Places(None, {NATIONAL}, [])
    allowed: set[str] = {NATIONAL}
    covered_places, uncovered = [], []
    parent_fallback: tuple[str, str] | None = None
    for place in named:
        if place in snap.covered:
            covered_places.append(place)
            for p in gazetteer.lineage(place):
                allowed |= snap.covered.get(p, set())
            continue
        uncovered.append(place)
        parent = next((p for p in gazetteer.lineage(place)[1:] if p in snap.covered), None)
        if parent and parent_fallback is None:
            parent_fallback = (place, parent)
    if covered_places:
        return Places(gazetteer.most_specific(covered_places), allowed, uncovered)
    if parent_fallback:
        place, parent = parent_fallback
        return Places(place, {NATIONAL, *snap.covered[parent]}, uncovered, fallback_parent=parent)
    return Places(gazetteer.most_specific(named), set(), uncovered)


class Answerer:
    """Answers one question at a time from the live index; safe to share across conversations."""

    def __init__(self, cfg: Config, embedder: Embedder | None = None,
                 knowledge: LiveKnowledge | None = None, llm: Any = None) -> None:
        dictionary = cfg.path(cfg.knowledge.dictionary_dir)
        self.cfg = cfg
        self.tokenizer = Tokenizer(dictionary)
        self.gazetteer = Gazetteer.load(dictionary)
        self.knowledge = knowledge or LiveKnowledge(cfg, self.tokenizer, embedder)
        self.thresholds = Thresholds.from_config(cfg)
        self.decision = DecisionModel.load(cfg.path(cfg.retrieval.decision_model)) if cfg.retrieval.decision_model \
            else None
        self.max_chars = cfg.retrieval.max_question_chars
        if llm is None and cfg.llm.base_url:
            from bot.llm import LlmRephraser

            llm = LlmRephraser.from_config(cfg)
        self.llm = llm

    def ask(self, question: str, region: str | None = None, mode: str = "hybrid") -> Answer:
        start = time.perf_counter()
        answer = self.respond(self.retrieve(question or "", region, mode))
        answer.latency_ms = (time.perf_counter() - start) * 1000
        return answer

    def clear_caches(self) -> None:
        """Forget the query embeddings seen so far (benchmarks measure questions afresh)."""
        snap = self.knowledge.current()
        if snap is not None and snap.query_vectors is not None:
            snap.query_vectors.clear()

    def retrieve(self, question: str, context_region: str | None = None, mode: str = "hybrid",
                 query_vec: Any = None) -> Retrieval:
        """Everything the decision needs: places, FAQ match, ranked passages, vocabulary coverage."""
        text = question.strip()
        lang = detect_language(text)
        if not text:
            return Retrieval(question, lang, refusal=("empty", {}))
        if len(text) > self.max_chars:
            return Retrieval(question, lang, refusal=("too_long", {"n": len(text)}))
        if not READABLE.search(text):
            return Retrieval(question, lang, refusal=("no_text", {}))
        snap = self.knowledge.current()
        if snap is None:
            return Retrieval(question, lang, refusal=("no_index", {}))
        places = resolve_places(snap, self.gazetteer, text, context_region)
        if places.allowed == set():
            return Retrieval(question, lang, snap, places,
                             refusal=("not_covered", {"place": "、".join(places.uncovered)}))
        tokens = self.tokenizer.tokens(text)
        qvec = query_vec if query_vec is not None or mode == "bm25" else snap.query_vector(text)
        own = snap.covered.get(places.region, set()) if places.region else set()
        rc = self.cfg.retrieval
        weights = (float(rc.weights.bm25), rc.weights.dense, rc.weights.faq)
        hits = search(snap, tokens, qvec, places.allowed, rc.top_k, mode, rc.rrf_k, own,
                      rc.place_boost, weights)
        coverage = sum(tok in snap.vocabulary for tok in tokens) / len(tokens) if tokens else 0.0
        return Retrieval(question, lang, snap, places, tokens, hits, coverage, mode=mode, query_vec=qvec)

    def respond(self, r: Retrieval, th: Thresholds | None = None) -> Answer:
        """The answer for a retrieval under thresholds `th` (default: the configured ones)."""
        th = th or self.thresholds
        region = r.places.region if r.places else None
        if r.refusal is not None:
            key, values = r.refusal
            return Answer(r.question, t(key, r.lang, **values), NO_ANSWER, region, lang=r.lang,
                          not_covered=key == "not_covered")
        chosen = decide(r, th, self.decision)
        result = Answer(r.question, "", NO_ANSWER, region, lang=r.lang, ranked=r.ranked, signals=r.signals)
        if r.snap is not None and r.places is not None and r.places.fallback_parent:
            return self._parent_reference(r, result)
        if chosen is None or r.snap is None or r.places is None:
            result.answer = t("no_answer", r.lang)
            if r.coverage >= th.coverage:
                result.suggestions = self.suggestions_for(r)
                if result.suggestions:
                    lines = "\n".join(f"• {q}" for _, q in result.suggestions)
                    result.answer = f"{t('did_you_mean', r.lang)}\n{lines}\n{t('offer_helpdesk', r.lang)}"
            return result
        body = self._compose(r.snap, chosen, r.tokens, r.lang)
        result.sources = [self._source(r.snap, chosen)]
        if chosen.meta.get("gap"):
            result.not_covered = True
            result.answer = f"{body}\n{t('offer_helpdesk', r.lang)}"
            return result
        result.action = ANSWER
        if self.llm is not None:
            body = self._rephrase(r, chosen, body, result)
        note = t("also_not_covered", r.lang, places="、".join(r.places.uncovered)) if r.places.uncovered else ""
        result.answer = "\n".join(p for p in (body, note) if p)
        result.related = self.related_for(r, chosen)
        return result

    def _parent_reference(self, r: Retrieval, result: Answer) -> Answer:
        """A place without rules of its own: its province's best passage, as reference only — never
        a national note — or a plain "there is none" when the province's documents do not answer."""
        assert r.snap is not None and r.places is not None and r.places.fallback_parent
        parent, place = r.places.fallback_parent, result.region
        regions = r.snap.covered.get(parent, set())
        ref = next((h.chunk for h in r.hits if str(h.chunk.meta.get("region")) in regions
                    and not h.chunk.meta.get("gap")), None)
        result.not_covered = True
        if ref is None:
            result.answer = t("no_parent_rule", r.lang, place=place, parent=parent)
            return result
        intro = t("not_covered_parent", r.lang, place=place, parent=parent)
        result.answer = f"{intro}\n{self._compose(r.snap, ref, r.tokens, r.lang)}"
        result.sources = [self._source(r.snap, ref)]
        return result

    @staticmethod
    def related_for(r: Retrieval, chosen: StoredChunk, most: int = 2) -> list[tuple[str, str]]:
        """Up to `most` other FAQ entries retrieval ranked next: one tap away if the answer missed."""
        return [(doc_id, q) for doc_id, q in Answerer.suggestions_for(r, most + 1) if doc_id != chosen.doc_id][:most]

    @staticmethod
    def suggestions_for(r: Retrieval, most: int = 3) -> list[tuple[str, str]]:
        """Close-call FAQ entries the worker can pick from (a clarifying question, not a guess)."""
        seen: dict[str, str] = {}
        for hit in r.hits:
            meta = hit.chunk.meta
            if meta.get("kind") == "faq" and not meta.get("gap") and hit.chunk.doc_id not in seen:
                en = r.lang == "en" and meta.get("question_en")
                seen[hit.chunk.doc_id] = str(meta.get("question_en") if en else meta.get("question", ""))
        return list(seen.items())[:most]

    def answer_entry(self, doc_id: str, lang: str, question: str = "") -> Answer | None:
        """The answer of one FAQ entry the worker picked from suggestions, with its source."""
        snap = self.knowledge.current()
        chunk = next((c for c in snap.chunks if c.doc_id == doc_id), None) if snap else None
        if snap is None or chunk is None:
            return None
        body = self._compose(snap, chunk, [], lang)
        return Answer(question or str(chunk.meta.get("question", "")), body, ANSWER, str(chunk.meta.get("region")),
                      [self._source(snap, chunk)], lang=lang)

    def _rephrase(self, r: Retrieval, chosen: StoredChunk, body: str, result: Answer) -> str:
        """The language model's version of the answer, or `body` if it fails or cites nothing."""
        assert r.snap is not None
        passages = [chosen, *[h.chunk for h in r.hits if h.chunk.chunk_id != chosen.chunk_id][:2]]
        rewritten = self.llm.rephrase(r.question.strip(), passages, r.lang)
        if rewritten is None:
            return body
        text, cited = rewritten
        refs = "；".join(f"[{i + 1}]{self._citation(r.snap, passages[i], r.lang)}" for i in cited)
        result.sources = [self._source(r.snap, passages[i]) for i in cited]
        return f"{text}\n{t('source_prefix', r.lang)}{refs}"

    def _compose(self, snap: Snapshot, chunk: StoredChunk, tokens: list[str], lang: str) -> str:
        """The answer text: the FAQ answer, or the passage's most relevant sentences, with its source."""
        meta = chunk.meta
        scope = t(f"scope_{meta.get('scope', 'note')}", lang) if meta.get("scope") in (
            "national", "province", "city", "note") else ""
        region = str(meta.get("region") or NATIONAL)
        label = t("place_label", lang, region=region, scope=scope, year=meta.get("year") or "?")
        if region == NATIONAL:
            label = t("national_label", lang, year=meta.get("year") or "?")
        if meta.get("kind") == "faq":
            text = str(meta.get("answer_en") if lang == "en" and meta.get("answer_en") else meta.get("answer", ""))
            asked = meta.get("question_en") if lang == "en" and meta.get("question_en") else meta.get("question")
            if asked:  # a near miss is visible at once: the answer says which question it answers
                label = f"{t('faq_question', lang, question=asked)}\n{label}"
        else:
            excerpt = self._excerpt(chunk.text, tokens)
            summary = str(meta.get("summary_en") or "")
            text = f"{summary}\n{t('original_text', lang)}{excerpt}" if lang == "en" and summary else excerpt
        return f"{label}{text.strip()}\n{t('source_prefix', lang)}{self._citation(snap, chunk, lang)}"

    def _excerpt(self, text: str, tokens: list[str], keep: int = 3) -> str:
        sentences = [s.strip() for s in SENTENCE.findall(text) if s.strip()]
        if len(sentences) <= keep:
            return "".join(sentences)
        wanted = set(tokens)
        scored = [(sum(tok in wanted for tok in self.tokenizer.tokens(s)), -i) for i, s in enumerate(sentences)]
        best = sorted(range(len(sentences)), key=lambda i: scored[i], reverse=True)[:keep]
        return "".join(sentences[i] for i in sorted(best))

    @staticmethod
    def _citation(snap: Snapshot, chunk: StoredChunk, lang: str) -> str:
        """《title》[labels]; a FAQ entry cites the documents it is drawn from (at most three)."""
        meta = chunk.meta
        docs = [snap.titles.get(d, {}) for d in meta.get("docs", [])] if meta.get("kind") == "faq" else []
        docs = [d for d in docs if d] or [meta]
        titles = [str(d.get("title_en") if lang == "en" and d.get("title_en") else d.get("title", "")) for d in docs]
        refs = "".join(f"[{s}]" for s in meta.get("sources", []))
        more = ("等" if lang == "zh" else " etc.") if len(titles) > 3 else ""
        if lang == "zh":
            return "".join(f"《{x}》" for x in titles[:3]) + more + refs
        return ", ".join(f"“{x}”" for x in titles[:3]) + more + f" {refs}"

    @staticmethod
    def _source(snap: Snapshot, chunk: StoredChunk) -> Source:
        meta = chunk.meta
        title = str(meta.get("title", chunk.doc_id))
        if meta.get("kind") == "faq" and meta.get("docs"):
            title = str(snap.titles.get(meta["docs"][0], {}).get("title", title))
        heading = str(meta.get("heading") or "")
        refs = ",".join(meta.get("sources", []))
        return Source(chunk.doc_id, title, str(meta.get("region") or NATIONAL),
                      f"{refs}{' · ' + heading if heading else ''}")
