"""Chinese-aware chunking: sentence boundaries, heading paths, metadata on every chunk."""

from ingest.chunking import chunk_document, split_sentences
from ingest.documents import Document, Section

ENDS = tuple("。！？；!?;”’」』）)】")


def test_sentences_split_at_chinese_marks_and_keep_closing_quotes() -> None:
    text = "他说：“可以报名。”然后走了！真的吗？是的；好。\n第二行没有句号"
    assert split_sentences(text) == ["他说：“可以报名。”", "然后走了！", "真的吗？", "是的；", "好。", "第二行没有句号"]


def test_repeated_marks_stay_together() -> None:
    assert split_sentences("能领吗？！能。") == ["能领吗？！", "能。"]


def test_chunks_never_end_mid_sentence_and_keep_headings() -> None:
    sentence = "广东省总工会对取得学历的一线职工每人一次性补助一千元。"
    body = sentence * 30
    doc = Document("gd", "policy", "policies/gd.md", {"title": "广东", "region": "广东", "sources": ["GD1"]},
                   [Section(["补助标准", "2024年"], body), Section(["申请流程"], "先登录粤工惠。再填写信息。")])
    chunks = chunk_document(doc, max_chars=100)
    body_chunks = [c for c in chunks if c.meta["heading"] == "补助标准 > 2024年"]
    assert len(body_chunks) >= 5
    assert "".join(c.text for c in body_chunks) == body  # nothing lost, nothing doubled
    for c in chunks:
        assert c.text.endswith(ENDS), c.text
        assert len(c.text) <= 100
        assert c.meta["region"] == "广东" and c.meta["sources"] == ["GD1"] and c.meta["doc_id"] == "gd"
        assert c.search_text.startswith("广东 广东 " + c.meta["heading"])
    assert chunks[-1].meta["heading"] == "申请流程" and chunks[-1].text == "先登录粤工惠。再填写信息。"
    assert [c.chunk_id for c in chunks] == [f"gd#{i}" for i in range(len(chunks))]


def test_a_sentence_longer_than_the_limit_is_kept_whole() -> None:
    long = "这" * 500 + "。"
    doc = Document("x", "policy", "x.md", {"title": "x"}, [Section([], "短句。" + long + "后句。")])
    texts = [c.text for c in chunk_document(doc, max_chars=100)]
    assert texts == ["短句。", long, "后句。"]


def test_faq_entry_is_one_chunk_with_its_phrasings_searchable() -> None:
    meta = {"title": "甲省补多少钱？", "question": "甲省补多少钱？", "answer": "一千元。", "phrasings": ["甲省能补多少"]}
    doc = Document("faq-a", "faq", "faq/a.yaml", meta, [Section([], "甲省补多少钱？\n一千元。")])
    (chunk,) = chunk_document(doc)
    assert chunk.text == "一千元。"
    assert "甲省能补多少" in chunk.search_text and chunk.meta["kind"] == "faq"
