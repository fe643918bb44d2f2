"""Loaders: turn files (Markdown with front matter, FAQ YAML, text, HTML, PDF, DOCX) into Documents.

`load_paths` walks files and folders; a file that cannot be read becomes a `LoadError`
naming the file, and the run goes on with the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import frontmatter

from common.yamlio import read_yaml
from ingest.documents import Document, LoadError, Section
from ingest.schema import KnowledgeFileError, PolicyMeta, check, check_faq

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _plain(value: Any) -> Any:
    """YAML dates and nested values → JSON-friendly plain values."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def split_markdown(body: str) -> tuple[str | None, list[Section]]:
    """Split Markdown into sections by headings; returns (first level-1 heading, sections)."""
    title: str | None = None
    stack: list[tuple[int, str]] = []
    sections: list[Section] = []
    buf: list[str] = []

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            sections.append(Section([h for _, h in stack], text))
        buf.clear()

    for line in body.splitlines():
        m = HEADING.match(line)
        if not m:
            buf.append(line)
            continue
        flush()
        level, heading = len(m.group(1)), m.group(2).strip()
        if level == 1 and title is None and not sections:
            title = heading
            continue
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
    flush()
    return title, sections


def load_markdown(path: Path, rel: str) -> list[Document]:
    post = frontmatter.loads(path.read_text(encoding="utf-8"))
    if "scope" in post.metadata:  # a policy: its front matter has a declared shape
        check(PolicyMeta, dict(post.metadata))
    meta = _plain(dict(post.metadata))
    h1, sections = split_markdown(post.content)
    if not sections:
        raise KnowledgeFileError("no text after the front matter")
    meta.setdefault("title", h1 or path.stem)
    doc_id = str(meta.pop("id", "") or f"file:{rel}")
    kind = "policy" if "scope" in meta else "file"
    return [Document(doc_id, kind, rel, meta, sections)]


def load_faq(path: Path, rel: str) -> list[Document]:
    data = read_yaml(path)
    check_faq(data)
    docs = []
    for entry in data:
        meta = _plain(dict(entry))
        doc_id = str(meta.pop("id"))
        meta["title"] = meta["question"]
        text = f"{meta['question']}\n{meta['answer']}".strip()
        docs.append(Document(doc_id, "faq", rel, meta, [Section([], text)]))
    return docs


def load_text(path: Path, rel: str) -> list[Document]:
    text = path.read_text(encoding="utf-8", errors="strict")
    return [Document(f"file:{rel}", "file", rel, {"title": path.stem}, [Section([], text.strip())])]


def load_html(path: Path, rel: str) -> list[Document]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    for tag in soup(["script", "style", "nav", "footer"]):
        tag.decompose()
    h1 = soup.find("h1")
    title = (soup.title.get_text(strip=True) if soup.title else "") or (h1.get_text(strip=True) if h1 else "")
    sections: list[Section] = []
    heading: list[str] = []
    buf: list[str] = []
    body = soup.body or soup
    for el in body.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "pre"]):
        text = el.get_text(" ", strip=True)
        if not text:
            continue
        if el.name in ("h1", "h2", "h3", "h4"):
            if buf:
                sections.append(Section(list(heading), "\n".join(buf)))
                buf = []
            heading = [] if el.name == "h1" else [text]
            continue
        buf.append(text)
    if buf:
        sections.append(Section(list(heading), "\n".join(buf)))
    if not sections:
        raise ValueError("no readable text in the HTML")
    return [Document(f"file:{rel}", "file", rel, {"title": title or path.stem}, sections)]


def load_pdf(path: Path, rel: str) -> list[Document]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    text = "\n".join(p for p in pages if p)
    if not text:
        raise ValueError("the PDF has no extractable text (scanned image?)")
    title = (reader.metadata.title if reader.metadata else None) or path.stem
    return [Document(f"file:{rel}", "file", rel, {"title": str(title)}, [Section([], text)])]


def load_docx(path: Path, rel: str) -> list[Document]:
    import docx

    document = docx.Document(str(path))
    sections: list[Section] = []
    heading: list[str] = []
    buf: list[str] = []
    title = document.core_properties.title or ""
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            if buf:
                sections.append(Section(list(heading), "\n".join(buf)))
                buf = []
            if style == "Title" or style == "Heading 1" and not title:
                title = title or text
                heading = []
            else:
                heading = [text]
            continue
        buf.append(text)
    if buf:
        sections.append(Section(list(heading), "\n".join(buf)))
    if not sections:
        raise ValueError("no readable text in the DOCX")
    return [Document(f"file:{rel}", "file", rel, {"title": title or path.stem}, sections)]


LOADERS: dict[str, Callable[[Path, str], list[Document]]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".yaml": load_faq,
    ".yml": load_faq,
    ".txt": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def _files(paths: Iterable[Path]) -> Iterable[tuple[Path, Path]]:
    """(file, root) pairs for every loadable file under the given files and folders, sorted."""
    for root in paths:
        if root.is_dir():
            for f in sorted(root.rglob("*")):
                if f.is_file() and f.suffix.lower() in LOADERS and not f.name.startswith((".", "README")):
                    yield f, root
        else:
            yield root, root.parent


def load_paths(paths: Iterable[Path]) -> tuple[list[Document], list[LoadError]]:
    """Load every file; unreadable files become LoadErrors. Duplicate ids are errors too."""
    docs: dict[str, Document] = {}
    errors: list[LoadError] = []
    for file, root in _files(paths):
        rel = f"{root.name}/{file.relative_to(root).as_posix()}"
        loader = LOADERS.get(file.suffix.lower())
        if loader is None:
            errors.append(LoadError(str(file), f"unsupported file type {file.suffix!r}", rel))
            continue
        try:
            loaded = loader(file, rel)
        except KnowledgeFileError as exc:  # the file's shape is wrong: say which fields, refuse it
            errors.append(LoadError(str(file), f"invalid: {exc}", rel))
            continue
        except Exception as exc:  # any reader failure names the file; the run goes on
            errors.append(LoadError(str(file), f"{type(exc).__name__}: {exc}", rel))
            continue
        for doc in loaded:
            if doc.doc_id in docs:
                errors.append(LoadError(str(file), f"duplicate id {doc.doc_id!r} (also in {docs[doc.doc_id].path})",
                                         rel))
                continue
            docs[doc.doc_id] = doc
    return list(docs.values()), errors
