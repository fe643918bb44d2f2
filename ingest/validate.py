"""Validate knowledge files against their declared shapes (`ingest/schema.py`), without indexing.

`validate_paths` checks every file under the given files and folders and returns one `Problem`
per bad file (its path and every field that is wrong). What a file is follows from where it lives:
`rules/` (with `fields.yaml`, the field catalogue), `guides/`, `dictionary/` (by file name), and
otherwise by suffix: Markdown (a policy if it has `scope`) or a FAQ file. Beyond each file's
shape, rule conditions must name fields of the catalogue, region parents must be regions, and FAQ
entries must name only topics of `dictionary/topics.yaml`.
Used by `qiuxue kb validate` and by every `qiuxue ingest`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from common.yamlio import read_yaml
from ingest.documents import Document
from ingest.loaders import LOADERS
from ingest.schema import (
    FieldCatalogue,
    GuideFile,
    HandoffFile,
    IntentsFile,
    KnowledgeFileError,
    RegionsFile,
    RuleFile,
    SynonymsFile,
    TopicsFile,
    check,
)

RULES, GUIDES, DICTIONARY = "rules", "guides", "dictionary"
TOPICS = "topics.yaml"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.message}


@dataclass(frozen=True)
class KnowledgeDirs:
    """Where the data-only folders are (config: knowledge.rules_dir, guides_dir, dictionary_dir)."""

    rules: Path | None = None
    guides: Path | None = None
    dictionary: Path | None = None

    def kind_of_folder(self, folder: Path) -> str | None:
        folder = folder.resolve()
        for kind, configured in ((RULES, self.rules), (GUIDES, self.guides), (DICTIONARY, self.dictionary)):
            if configured is not None and folder == configured.resolve():
                return kind
        return folder.name if folder.name in (RULES, GUIDES, DICTIONARY) else None


def _yaml(path: Path) -> Any:
    try:
        return read_yaml(path)
    except yaml.YAMLError as exc:
        raise KnowledgeFileError(re.sub(r"\s+", " ", f"not valid YAML: {exc}")) from None


def _check_rules(path: Path) -> None:
    data = _yaml(path)
    if path.name == "fields.yaml":
        check(FieldCatalogue, data, entry_word="")
        return
    rules: RuleFile = check(RuleFile, data, entry_word="")
    fields_file = path.parent / "fields.yaml"
    if not fields_file.exists():
        return
    known = set((_yaml(fields_file) or {}).keys())
    unknown = [f"conditions[{i}]: unknown field {name!r} (not in fields.yaml)"
               for i, c in enumerate(rules.conditions)
               for name in (c.field, *c.when) if name not in known]
    if unknown:
        raise KnowledgeFileError("; ".join(unknown))


def _check_userdict(path: Path) -> None:
    problems = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if parts and len(parts) > 1 and not parts[1].isdigit():
            problems.append(f"line {n}: the frequency {parts[1]!r} must be a whole number (word freq tag)")
        if len(parts) > 3:
            problems.append(f"line {n}: expected `word [freq [tag]]`, got {len(parts)} parts")
    if problems:
        raise KnowledgeFileError("; ".join(problems))


def _check_regions(path: Path) -> None:
    regions: RegionsFile = check(RegionsFile, _yaml(path), entry_word="region")
    names = {r.name for r in regions.root}
    orphans = [f"region {i + 1} ({r.name}): parent {r.parent!r} is not a region in this file"
               for i, r in enumerate(regions.root) if r.parent and r.parent not in names]
    if orphans:
        raise KnowledgeFileError("; ".join(orphans))


DICTIONARY_CHECKS: dict[str, Callable[[Path], None]] = {
    "regions.yaml": _check_regions,
    "synonyms.yaml": lambda p: check(SynonymsFile, _yaml(p) or [], entry_word="group"),
    "handoff.yaml": lambda p: check(HandoffFile, _yaml(p) or [], entry_word="topic"),
    "intents.yaml": lambda p: check(IntentsFile, _yaml(p), entry_word=""),
    "topics.yaml": lambda p: check(TopicsFile, _yaml(p), entry_word=""),
    "userdict.txt": _check_userdict,
    "stopwords.txt": lambda p: p.read_text(encoding="utf-8"),
}


def known_topics(dictionary: Path | None) -> frozenset[str] | None:
    """The topic ids of `dictionary/topics.yaml`; None when there is no such file or it is itself bad
    (then FAQ topics are not checked: the file's own problem is reported on it)."""
    path = dictionary / TOPICS if dictionary is not None else None
    if path is None or not path.is_file():
        return None
    stat = path.stat()
    return _topics_in(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _topics_in(path: Path, _mtime_ns: int, _size: int) -> frozenset[str] | None:
    """The file read once per version of it (every FAQ file checked asks for it), not once per document."""
    try:
        return frozenset(check(TopicsFile, _yaml(path), entry_word="").root)
    except KnowledgeFileError:
        return None


def topic_problems(docs: Iterable[Document], known: frozenset[str] | None) -> list[str]:
    """One line per FAQ entry topic that `known` (dictionary/topics.yaml) does not list."""
    if known is None:
        return []
    return [f"{d.doc_id}: topic {t!r} is not in dictionary/{TOPICS} ({', '.join(sorted(known))})"
            for d in docs if d.kind == "faq" for t in d.meta.get("topics") or [] if t not in known]


def _document_checker(dirs: KnowledgeDirs) -> Callable[[Path], None]:
    def check_document(path: Path) -> None:
        """A policy, FAQ or other document: exactly what ingest's loader accepts, FAQ topics listed."""
        loader = LOADERS.get(path.suffix.lower())
        if loader is None:
            raise KnowledgeFileError(f"unsupported file type {path.suffix!r}")
        problems = topic_problems(loader(path, path.name), known_topics(dirs.dictionary))
        if problems:
            raise KnowledgeFileError("; ".join(problems))

    return check_document


def checker_for(path: Path, dirs: KnowledgeDirs) -> Callable[[Path], None] | None:
    """How to check this file, or None if it is no knowledge file (README, hidden files …)."""
    if path.name.startswith((".", "README")):
        return None
    kind = dirs.kind_of_folder(path.parent)
    if kind == RULES:
        return _check_rules if path.suffix in (".yaml", ".yml") else None
    if kind == GUIDES:
        return (lambda p: check(GuideFile, _yaml(p), entry_word="")) if path.suffix in (".yaml", ".yml") else None
    if kind == DICTIONARY:
        return DICTIONARY_CHECKS.get(path.name)
    return _document_checker(dirs) if path.suffix.lower() in LOADERS else None


def _files(paths: Iterable[Path]) -> Iterable[Path]:
    for root in paths:
        if root.is_dir():
            yield from (f for f in sorted(root.rglob("*")) if f.is_file())
        elif root.exists():
            yield root


def validate_file(path: Path, dirs: KnowledgeDirs = KnowledgeDirs()) -> Problem | None:
    checker = checker_for(path, dirs)
    if checker is None:
        return None
    try:
        checker(path)
    except KnowledgeFileError as exc:
        return Problem(str(path), str(exc))
    except UnicodeDecodeError as exc:
        return Problem(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    except RecursionError:
        return Problem(str(path), "nested too deeply")
    except Exception as exc:  # any reader failure is a problem of this file, named
        return Problem(str(path), f"{type(exc).__name__}: {exc}")
    return None


def validate_paths(paths: Iterable[Path], dirs: KnowledgeDirs = KnowledgeDirs()) -> tuple[int, list[Problem]]:
    """(files checked, problems) for every knowledge file under `paths`."""
    checked, problems = 0, []
    for path in _files(paths):
        if checker_for(path, dirs) is None:
            continue
        checked += 1
        if problem := validate_file(path, dirs):
            problems.append(problem)
    missing = [Problem(str(p), "no such file or folder") for p in paths if not p.exists()]
    return checked, [*missing, *problems]
