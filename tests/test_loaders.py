"""Loaders: each file type becomes Documents; an unreadable file is named and the run goes on."""

from pathlib import Path

import docx

from ingest.loaders import load_paths, split_markdown


def _pdf_with_text(text: str) -> bytes:
    """A minimal valid one-page PDF showing `text` (ASCII) in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_markdown_front_matter_becomes_metadata(small_kb: Path) -> None:
    docs, errors = load_paths([small_kb / "policies"])
    assert errors == []
    alpha = next(d for d in docs if d.doc_id == "alpha")
    assert alpha.kind == "policy"
    assert alpha.meta["region"] == "甲省" and alpha.meta["sources"] == ["T1"] and alpha.meta["year"] == 2024
    assert [s.headings for s in alpha.sections] == [["补助标准"], ["申请条件"]]
    assert alpha.path == "policies/alpha.md"


def test_faq_file_gives_one_document_per_entry(small_kb: Path) -> None:
    docs, errors = load_paths([small_kb / "faq"])
    assert errors == []
    assert [d.doc_id for d in docs] == ["faq-what", "faq-amount-alpha"]
    assert docs[1].meta["phrasings"] == ["甲省能补多少", "甲省补贴标准"]
    assert docs[1].kind == "faq" and docs[1].title == "甲省补多少钱？"


def test_markdown_heading_path_nests() -> None:
    title, sections = split_markdown("# 标题\n前言。\n## 一\n甲。\n### 一点一\n乙。\n## 二\n丙。")
    assert title == "标题"
    assert [(s.headings, s.text) for s in sections] == [
        ([], "前言。"), (["一"], "甲。"), (["一", "一点一"], "乙。"), (["二"], "丙。")]


def test_text_html_pdf_docx(tmp_path: Path) -> None:
    (tmp_path / "notice.txt").write_text("广州市总工会通知。\n补助一千五百元。", encoding="utf-8")
    (tmp_path / "page.html").write_text(
        "<html><head><title>厦门通知</title><script>var x=1;</script></head><body>"
        "<h1>厦门</h1><h2>补助标准</h2><p>最高三千元。</p><h2>流程</h2><ul><li>报名。</li></ul></body></html>",
        encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(_pdf_with_text("Union subsidy 1000 yuan per person."))
    d = docx.Document()
    d.add_heading("福州补助", level=1)
    d.add_heading("补助标准", level=2)
    d.add_paragraph("每学年一千元。")
    d.save(str(tmp_path / "fuzhou.docx"))

    docs, errors = load_paths([tmp_path])
    assert errors == []
    by_path = {d.path.split("/", 1)[1]: d for d in docs}
    assert by_path["notice.txt"].sections[0].text.startswith("广州市总工会通知。")
    html = by_path["page.html"]
    assert html.title == "厦门通知"
    assert [(s.headings, s.text) for s in html.sections] == [(["补助标准"], "最高三千元。"), (["流程"], "报名。")]
    assert "var x" not in str(html.sections)
    assert "1000 yuan" in by_path["scan.pdf"].sections[0].text
    word = by_path["fuzhou.docx"]
    assert word.title == "福州补助"
    assert [(s.headings, s.text) for s in word.sections] == [(["补助标准"], "每学年一千元。")]
    assert all(d.doc_id == f"file:{d.path}" for d in docs)


def test_unreadable_files_are_named_and_the_rest_loads(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("---\nid: good\nscope: city\nregion: 甲市\nsources: [T1]\n---\n## 标准\n一千元。", encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"this is not a pdf")
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 truncated zip")
    (tmp_path / "bad-front-matter.md").write_text("---\nid: [unclosed\n---\n正文。", encoding="utf-8")
    (tmp_path / "gbk.txt").write_bytes("补助标准".encode("gbk"))
    (tmp_path / "faq.yaml").write_text("- id: x\n  question: 问？\n", encoding="utf-8")

    docs, errors = load_paths([tmp_path])
    assert [d.doc_id for d in docs] == ["good"]
    named = sorted(Path(e.path).name for e in errors)
    assert named == ["bad-front-matter.md", "broken.docx", "broken.pdf", "faq.yaml", "gbk.txt"]
    assert all(e.reason for e in errors)


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text("---\nid: same\nscope: city\nregion: 甲市\nsources: [T1]\n---\n正文。", encoding="utf-8")
    docs, errors = load_paths([tmp_path])
    assert len(docs) == 1 and len(errors) == 1 and "duplicate id 'same'" in errors[0].reason
