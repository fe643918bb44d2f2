"""Should the bot ask "你在哪个省/市？" before answering? Which places should it offer?

Only national text answers a worker who has not said where they are (one place's rule is not an
answer for a worker elsewhere). When that refuses but the question is one a place's own rules
answer — the best entries over *all* places are regional, and the decision would answer from the
best such place's rules if the worker were there — the right reply is to ask for the place, not to
refuse. The places offered are those retrieval ranked, best first. Nothing here is policy: which
places have rules comes from the indexed documents' regions.
"""

from __future__ import annotations

from bot.answering import Answerer, Retrieval, decide
from bot.regions import NATIONAL
from bot.retrieval import search


def places_to_offer(answerer: Answerer, r: Retrieval, most: int = 6) -> list[str]:
    """The places (best first) whose rules would answer `r`'s question, if asking for the place
    makes sense: nobody said where, and a place's own rules answer it confidently; else []."""
    if r.refusal is not None or r.snap is None or r.places is None or r.places.region is not None or not r.tokens:
        return []
    snap = r.snap
    regions = {str(c.meta.get("region") or NATIONAL) for c in snap.chunks}
    qvec = r.query_vec  # the question's embedding, computed once
    rc = answerer.cfg.retrieval
    hits = search(snap, r.tokens, qvec, regions, rc.top_k, r.mode, rc.rrf_k, None, 0.0,
                  (float(rc.weights.bm25), rc.weights.dense, rc.weights.faq))
    if not hits or str(hits[0].chunk.meta.get("region") or NATIONAL) == NATIONAL or hits[0].chunk.meta.get("gap"):
        return []  # the national text is the best there is: knowing the place would not help
    places = list(dict.fromkeys(str(h.chunk.meta.get("region")) for h in hits
                                if str(h.chunk.meta.get("region") or NATIONAL) != NATIONAL
                                and not h.chunk.meta.get("gap") and str(h.chunk.meta.get("region")) in snap.covered))
    if not places:
        return []
    there = answerer.retrieve(r.question, places[0], r.mode, qvec)
    chosen = decide(there, answerer.thresholds, answerer.decision)
    if chosen is None or str(chosen.meta.get("region") or NATIONAL) == NATIONAL or chosen.meta.get("gap"):
        return []
    return places[:most]
