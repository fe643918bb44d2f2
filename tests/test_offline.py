"""No code path may reach the network: embedding and a whole refresh run behind a socket guard."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ingest.embedders import BACKENDS, make_embedder
from ingest.refresh import refresh
from tests.conftest import NetworkBlocked


def test_the_guard_itself_blocks_outside_addresses(no_network: list[object]) -> None:
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("example.org", 443), timeout=1)
    with pytest.raises(NetworkBlocked):
        socket.socket().connect(("10.1.2.3", 80))
    assert no_network == ["example.org", ("10.1.2.3", 80)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_embeds_chinese_offline(backend: str, no_network: list[object]) -> None:
    embedder = make_embedder(backend, "minilm" if backend == "sentence-transformers" else "")
    docs = embedder.embed_documents(["广东省每人补助一千元。", "厦门市工会卡。"])
    query = embedder.embed_queries(["广东补多少钱"])
    assert docs.shape == (2, embedder.dim) and query.shape == (1, embedder.dim)
    assert abs(float((docs ** 2).sum(axis=1)[0]) - 1.0) < 1e-3
    assert no_network == []


def test_a_whole_refresh_is_offline(cfg, small_kb: Path, no_network: list[object]) -> None:
    report = refresh(cfg, [str(small_kb)])  # the configured default embedder, chroma on disk
    assert report.switched and report.chunks > 0
    assert no_network == []
