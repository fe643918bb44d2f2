"""Chinese-aware chunking: split on headings and sentence ends, never inside a sentence.

A policy section is cut into sentences at 。！？；!?; (closing quotes and brackets stay with their
sentence) and at line breaks; whole sentences are packed into chunks of at most `max_chars`
(a single longer sentence becomes a chunk of its own rather than being cut). Every chunk keeps
its document's metadata and heading path. A FAQ entry is exactly one chunk.
"""

from __future__ import annotations

import re

from ingest.documents import Chunk, Document

SENTENCE_END = re.compile(r"(?<=[。！？；!?;])(?![”’」』）)\]】。！？；!?;])|(?<=[。！？；!?;][”’」』）)\]】])")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, in order, each ending at a sentence mark or a line break."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        out.extend(s.strip() for s in SENTENCE_END.split(line) if s.strip())
    return out


def pack_sentences(sentences: list[str], max_chars: int) -> list[str]:
    """Greedily join whole sentences into pieces of at most max_chars (lines joined by newline)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in sentences:
        if current and size + len(sentence) > max_chars:
            pieces.append(_join(current))
            current, size = [], 0
        current.append(sentence)
        size += len(sentence)
    if current:
        pieces.append(_join(current))
    return pieces


def _join(sentences: list[str]) -> str:
    """Join sentences: CJK sentences run on, others get a space."""
    text = sentences[0]
    for s in sentences[1:]:
        sep = "" if re.search(r"[\u3000-\u9fff\uff00-\uffef]$", text) else " "
        text += sep + s
    return text


def chunk_document(doc: Document, max_chars: int = 320) -> list[Chunk]:
    """Chunks of one document, ids `<doc_id>#<n>`, metadata and heading path on each."""
    base = {**doc.meta, "doc_id": doc.doc_id, "kind": doc.kind, "path": doc.path,
            "title": doc.title, "doc_hash": doc.content_hash}
    if doc.kind == "faq":
        phrasings = [str(p) for p in doc.meta.get("phrasings") or []]
        question, answer = str(doc.meta["question"]), str(doc.meta["answer"]).strip()
        english = [str(doc.meta.get(k) or "") for k in ("question_en", "answer_en")]
        search = "\n".join(p for p in [question, *phrasings, answer, *english] if p)
        return [Chunk(f"{doc.doc_id}#0", doc.doc_id, answer, search, {**base, "heading": "", "chunk": 0})]

    chunks: list[Chunk] = []
    for section in doc.sections:
        heading = " > ".join(section.headings)
        for piece in pack_sentences(split_sentences(section.text), max_chars):
            n = len(chunks)
            prefix = " ".join(p for p in (str(doc.meta.get("region") or ""), doc.title,
                                          str(doc.meta.get("title_en") or ""), heading) if p)
            chunks.append(Chunk(f"{doc.doc_id}#{n}", doc.doc_id, piece, f"{prefix}\n{piece}",
                                {**base, "heading": heading, "chunk": n}))
    return chunks
