"""Safe, incremental index refresh: build a new version beside the live one, check it, then switch.

- Incremental by content hash: unchanged documents are copied with their vectors from the live
  version (never re-embedded), changed ones are re-chunked and re-embedded, deleted ones vanish.
  A chunk text this data_dir embedded before with the same model takes its vector from the cache
  (`ingest/vector_cache.py`); `rebuild` re-embeds everything.
- A file that cannot be read is reported by name; if the live version had it, its old chunks are
  kept so one broken upload never silently empties part of the knowledge base.
- Every file is validated against its declared shape (`ingest/schema.py`): a bad one is named with
  its fields and refused like an unreadable one; bad rules, guides or dictionary files, and FAQ topics
  that `dictionary/topics.yaml` does not list, are reported.
- The live pointer moves only after the new version is complete and passes the smoke check
  (non-empty, the probe query finds a passage, and the caller's `candidate_check` — the bot's
  serving check, which loads and asks the candidate as a bot would). A crash before that leaves the
  live version serving.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from tqdm import tqdm

from common.clock import utcnow
from common.db import open_database
from common.settings import Config
from ingest import index as kb_index
from ingest.chunking import chunk_document
from ingest.documents import Chunk, Document
from ingest.embedders import Embedder, embedder_from_config
from ingest.errors import RefreshError
from ingest.loaders import load_paths
from ingest.stages import StageClock
from ingest.validate import KnowledgeDirs, Problem, known_topics, topic_problems, validate_paths
from ingest.vector_cache import DOCUMENTS, VectorCache
from ingest.versions import BUILDING, COMPLETE, DELETED, FAILED, KbVersion, live_version, set_live

# Loads a candidate version as a serving bot does and probes it; raises if the bot would fail.
# The bot provides it (`bot.smoke.serving_check`): ingest never imports the bot.
CandidateCheck = Callable[[Config, KbVersion, Embedder], object]
WRITE_BATCH = 4000  # chunks per Chroma add (its SQLite limit is a little over 5,000)


@dataclass
class RefreshReport:
    version: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    documents: int = 0
    switched: bool = False
    errors: list[str] = field(default_factory=list)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # stage → wall/CPU seconds

    def as_json(self) -> dict[str, object]:
        keys = ("added", "updated", "removed", "unchanged", "chunks", "version")
        data = asdict(self)
        return {**{k: data[k] for k in keys}, "documents": self.documents,
                "switched": self.switched, "errors": self.errors, "timings": self.timings}


@contextmanager
def ingest_lock(cfg: Config) -> Iterator[None]:
    """One refresh at a time per data_dir."""
    with open(cfg.data_path / "ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefreshError("another `qiuxue ingest` is running on this data_dir") from None
        yield


def knowledge_paths(cfg: Config, paths: list[str] | None) -> list[Path]:
    """Explicit PATHS, or the configured knowledge base plus the helpdesk's approved FAQ and the console's uploads."""
    if paths:
        return [Path(p).resolve() for p in paths]
    roots = [cfg.path(p) for p in cfg.knowledge.paths]
    extra = [cfg.path(d) for d in (cfg.knowledge.approved_dir, cfg.knowledge.uploads_dir) if d]
    return [*roots, *(d for d in extra if d.is_dir())]


def knowledge_dirs(cfg: Config) -> KnowledgeDirs:
    k = cfg.knowledge
    return KnowledgeDirs(cfg.path(k.rules_dir), cfg.path(k.guides_dir), cfg.path(k.dictionary_dir))


def data_file_problems(cfg: Config) -> list[Problem]:
    """Problems of the rules, guides and dictionary files (read by the bot directly, not indexed)."""
    dirs = knowledge_dirs(cfg)
    return validate_paths([d for d in (dirs.rules, dirs.guides, dirs.dictionary) if d is not None], dirs)[1]


def new_version_id() -> str:
    return datetime.now().strftime("v%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _default_actor() -> str:
    return os.environ.get("QIUXUE_ACTOR") or getpass.getuser()


def refresh(cfg: Config, paths: list[str] | None = None, *, rebuild: bool = False, by: str | None = None,
            progress: bool = False, embedder: Embedder | None = None,
            candidate_check: CandidateCheck | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> RefreshReport:
    """Build a new index version from `paths` (default: knowledge.paths) and make it live.

    `candidate_check` (the bot's serving check) must pass before the version goes live;
    `on_progress(done, total)` hears of every embedded batch (the web console's progress bar).
    """
    embedder = embedder or embedder_from_config(cfg)
    sessions = open_database(cfg)
    with ingest_lock(cfg):
        return _refresh_locked(cfg, sessions, knowledge_paths(cfg, paths), rebuild, by or _default_actor(),
                               progress, embedder, candidate_check, on_progress)


def _plan(docs: list[Document], previous: dict[str, dict], broken_paths: set[str]) -> tuple[
        list[Document], list[str], dict[str, int]]:
    """(documents to embed, doc ids to copy from the live version, counts)."""
    counts = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
    to_embed: list[Document] = []
    to_copy: list[str] = []
    seen = set()
    for doc in docs:
        seen.add(doc.doc_id)
        old = previous.get(doc.doc_id)
        if old is None:
            counts["added"] += 1
            to_embed.append(doc)
        elif old["hash"] != doc.content_hash:
            counts["updated"] += 1
            to_embed.append(doc)
        else:
            counts["unchanged"] += 1
            to_copy.append(doc.doc_id)
    for doc_id, old in previous.items():
        if doc_id in seen:
            continue
        if old["path"] in broken_paths:  # unreadable now: keep serving what we had
            counts["unchanged"] += 1
            to_copy.append(doc_id)
        else:
            counts["removed"] += 1
    return to_embed, to_copy, counts


def _refresh_locked(cfg: Config, sessions: sessionmaker, roots: list[Path], rebuild: bool, by: str,
                    progress: bool, embedder: Embedder, candidate_check: CandidateCheck | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> RefreshReport:
    clock = StageClock()
    with clock.stage("load"):
        docs, load_errors = load_paths(roots)
        errors = [str(e) for e in load_errors] + [str(p) for p in data_file_problems(cfg)] + \
            topic_problems(docs, known_topics(knowledge_dirs(cfg).dictionary))
    broken = {e.rel for e in load_errors}
    with clock.stage("plan"):
        live = live_version(sessions)
        client = kb_index.chroma_client(cfg)
        reusable = live is not None and live.embedder == embedder.name and not rebuild
        previous: dict[str, dict] = dict(live.manifest) if reusable and live else {}
        to_embed, to_copy, counts = _plan(docs, previous, broken)

    if live is not None and reusable and not to_embed and not counts["removed"]:
        return RefreshReport(live.version, **counts, chunks=live.chunks, documents=live.documents,
                             switched=False, errors=errors, timings=clock.as_json())
    if not docs and not to_copy:
        raise RefreshError("nothing to index: no readable documents under " + ", ".join(map(str, roots)))

    version = new_version_id()
    name = kb_index.collection_name(cfg, version)
    with sessions.begin() as s:
        s.add(KbVersion(version=version, collection=name, embedder=embedder.name, created_by=by))
    try:
        collection = kb_index.create_collection(client, name, embedder)
        manifest: dict[str, dict] = {}
        texts: list[str] = []  # every chunk's embedded text in the new version
        if to_copy and live is not None:
            with clock.stage("copy"):
                texts += _copy_unchanged(client, live, collection, embedder, to_copy)
            manifest.update({doc_id: previous[doc_id] for doc_id in to_copy})
        cache = VectorCache(cfg.data_path / "cache")
        texts += _embed_into(collection, to_embed, embedder, cfg, progress, manifest, cache, rebuild, on_progress,
                             clock)
        with clock.stage("smoke"):
            total = collection.count()
            _smoke_check(collection, embedder, cfg.index.probe_query)
        if candidate_check is not None:
            with sessions() as s:
                candidate = s.get(KbVersion, version)
            try:
                with clock.stage("serving_check"):  # the bot loads the candidate (BM25, FAQ matrix) and asks it
                    candidate_check(cfg, candidate, embedder)
            except Exception as exc:
                raise RefreshError(f"smoke check failed: the bot cannot serve {version} "
                                   f"({type(exc).__name__}: {exc}); {live.version if live else 'no version'} "
                                   "still live") from exc
        with clock.stage("switch"):
            with sessions.begin() as s:
                row = s.get(KbVersion, version)
                row.status, row.finished_at = COMPLETE, utcnow()
                row.documents, row.chunks, row.manifest = len(manifest), total, manifest
                row.stats = {**counts, "errors": errors}
                set_live(s, version, by)
            cache.retain(embedder, DOCUMENTS, texts)
    except BaseException as exc:
        with sessions.begin() as s:
            row = s.get(KbVersion, version)
            row.status, row.finished_at = FAILED, utcnow()
            row.stats = {**counts, "errors": [*errors, f"{type(exc).__name__}: {exc}"]}
        kb_index.drop_collection(client, name)
        if isinstance(exc, Exception) and not isinstance(exc, RefreshError):
            raise RefreshError(f"refresh failed, {live.version if live else 'no version'} still live: "
                               f"{type(exc).__name__}: {exc}") from exc
        raise
    with clock.stage("prune"):
        prune_versions(cfg, sessions, client)
    return RefreshReport(version, **counts, chunks=total, documents=len(manifest), switched=True, errors=errors,
                         timings=clock.as_json())


def _copy_unchanged(client, live: KbVersion, collection, embedder: Embedder, doc_ids: list[str]) -> list[str]:
    """Copy the live version's chunks of `doc_ids`, with their vectors, into `collection`; their texts."""
    source = kb_index.open_collection(client, live.collection, embedder)
    stored, vectors = kb_index.read_chunks(source, {"doc_id": {"$in": doc_ids}}, with_vectors=True)
    copied = [Chunk(c.chunk_id, c.doc_id, c.text, c.search_text,
                    {k: v for k, v in c.meta.items() if k != "text"}) for c in stored]
    if copied and vectors is not None:
        kb_index.add_chunks(collection, copied, vectors, batch=WRITE_BATCH)
    return [c.search_text for c in copied]


def _embed_into(collection, docs: list[Document], embedder: Embedder, cfg: Config, progress: bool,
                manifest: dict[str, dict], cache: VectorCache, fresh: bool,
                on_progress: Callable[[int, int], None] | None = None,
                clock: StageClock | None = None) -> list[str]:
    """Chunk, embed and add `docs` (vectors from the cache where this data_dir embedded the text before); their texts.

    Every distinct uncached text is embedded once, in batches of `embedding.batch_size` (the engine spreads a
    batch over the cores), and the chunks are written to Chroma afterwards in a few large adds."""
    clock = clock or StageClock()
    with clock.stage("chunk"):
        chunks_by_doc = {d.doc_id: chunk_document(d, cfg.index.chunk_max_chars) for d in docs}
        pending = [c for d in docs for c in chunks_by_doc[d.doc_id]]
        texts = [c.search_text for c in pending]
    with clock.stage("embed"):
        _embed_missing(cache, embedder, texts, cfg.embedding.batch_size, fresh, progress, on_progress)
    with clock.stage("write"):
        kb_index.add_chunks(collection, pending, cache.vectors(embedder, texts, DOCUMENTS), batch=WRITE_BATCH)
    for doc in docs:
        manifest[doc.doc_id] = {"hash": doc.content_hash, "path": doc.path,
                                "chunks": len(chunks_by_doc[doc.doc_id])}
    return texts


def _embed_missing(cache: VectorCache, embedder: Embedder, texts: list[str], batch: int, fresh: bool,
                   progress: bool, on_progress: Callable[[int, int], None] | None) -> int:
    """Embed the distinct `texts` the cache lacks (all when `fresh`) into it; how many were embedded.

    Progress counts texts: the cached ones are done at once."""
    missing = cache.missing(embedder, texts, DOCUMENTS, fresh=fresh)
    total = len(set(texts))
    done = total - len(missing)
    show = progress and sys.stderr.isatty()
    with tqdm(total=total, initial=done, unit="chunk", desc="embedding", disable=not show, file=sys.stderr) as bar:
        if on_progress is not None:
            on_progress(done, total)
        for start in range(0, len(missing), batch):
            part = missing[start:start + batch]
            cache.put(embedder, DOCUMENTS, part, embedder.embed_documents(part))
            done += len(part)
            bar.update(len(part))
            if on_progress is not None:
                on_progress(done, total)
    return len(missing)


def _smoke_check(collection, embedder: Embedder, probe: str) -> None:
    if collection.count() == 0:
        raise RefreshError("smoke check failed: the new version is empty")
    hits = collection.query(query_embeddings=embedder.embed_queries([probe]), n_results=1)
    if not hits["ids"] or not hits["ids"][0]:
        raise RefreshError(f"smoke check failed: the probe query {probe!r} found nothing")


def rollback(cfg: Config, to: str | None = None, by: str | None = None) -> KbVersion:
    """Point `live` at `to`, or at the newest complete version older than the live one."""
    sessions = open_database(cfg)
    with ingest_lock(cfg), sessions.begin() as s:
        live = live_version(sessions)
        candidates = s.scalars(select(KbVersion).where(KbVersion.status == COMPLETE)
                               .order_by(KbVersion.created_at.desc())).all()
        if to:
            target = next((v for v in candidates if v.version == to), None)
            if target is None:
                raise RefreshError(f"no complete version {to!r} to roll back to")
        else:
            older = [v for v in candidates if live is None or v.created_at < live.created_at]
            if not older:
                raise RefreshError("no earlier complete version to roll back to")
            target = older[0]
        set_live(s, target.version, by or _default_actor())
        return target


def prune_versions(cfg: Config, sessions: sessionmaker, client) -> list[str]:
    """Delete collections of all but the newest `keep_versions` complete versions (never the live one).

    Runs under the ingest lock, so a version still `building` is a leftover of a crashed run.
    """
    keep = cfg.index.keep_versions
    live = live_version(sessions)
    dropped = []
    with sessions.begin() as s:
        rows = s.scalars(select(KbVersion).where(KbVersion.status.in_([COMPLETE, FAILED, BUILDING]))
                         .order_by(KbVersion.created_at.desc())).all()
        complete_seen = 0
        for row in rows:
            if row.status == COMPLETE:
                complete_seen += 1
                if complete_seen <= keep or (live and row.version == live.version):
                    continue
            kb_index.drop_collection(client, row.collection)
            row.status = DELETED
            dropped.append(row.version)
    return dropped
