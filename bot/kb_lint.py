"""`qiuxue kb lint`: content checks of the knowledge base that a schema cannot make.

Three checks, each driven by data:
- `never_fails`: a rule condition that holds for every answer its field allows (or whose `when` can
  never apply), so it can never fail and tells the worker nothing.
- `unasked_requirement`: a `complete: true` place whose policy text names a requirement (the phrases
  in `dictionary/requirements.yaml`) that its rule file never asks.
- `wording`: a fact worded another way than its preferred wording (`dictionary/wordings.yaml`).

Exit 0 when clean, 1 with one line per finding (or `--json`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import frontmatter

from bot.eligibility import Condition, Field, Rules, RuleSet
from bot.regions import Gazetteer
from common.settings import Config
from common.yamlio import parse_yaml, read_yaml
from ingest.loaders import split_markdown

EXEMPT_KEYS = {"phrasings"}  # workers' own words: they may say anything


@dataclass(frozen=True)
class Finding:
    check: str  # never_fails | unasked_requirement | wording
    path: str
    message: str


@dataclass(frozen=True)
class KnowledgePaths:
    rules_dir: Path
    dictionary_dir: Path
    guides_dir: Path
    doc_paths: tuple[Path, ...]  # policy documents and FAQ files (files or folders)

    @classmethod
    def from_config(cls, cfg: Config) -> KnowledgePaths:
        k = cfg.knowledge
        return cls(cfg.path(k.rules_dir), cfg.path(k.dictionary_dir), cfg.path(k.guides_dir),
                   tuple(cfg.path(p) for p in k.paths))

    @classmethod
    def under(cls, root: Path) -> KnowledgePaths:
        """The standard layout of a knowledge folder (tests lint a copy)."""
        return cls(root / "rules", root / "dictionary", root / "guides", (root / "policies", root / "faq"))

    def files(self, *suffixes: str) -> list[Path]:
        found: list[Path] = []
        for p in (*self.doc_paths, self.rules_dir, self.guides_dir):
            found += [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        return [f for f in found if f.suffix in suffixes]


def shown(path: Path) -> str:
    """A file as findings name it: its folder and name (rules/guangdong.yaml)."""
    return f"{path.parent.name}/{path.name}"


# ── never_fails ──────────────────────────────────────────────────────────────────────────────

def domain(f: Field, rules: RuleSet) -> list[Any] | None:
    """Every answer a field allows, when there are few enough to try; None for dates and open ranges."""
    if f.type == "bool":
        return [True, False]
    if f.type == "enum":
        return list(f.buttons)
    if f.type == "region":
        return [rules.region, *rules.covers]  # the places these rules are read for
    if f.type == "int" and f.min is not None and f.max is not None and f.max - f.min <= 10_000:
        return list(range(f.min, f.max + 1))
    return None


def never_fails(rules: Rules, rule_files: dict[str, str]) -> Iterator[Finding]:
    seen: set[int] = set()
    for ruleset in rules.by_place.values():
        if id(ruleset) in seen:
            continue
        seen.add(id(ruleset))
        path = rule_files.get(ruleset.region, ruleset.region)
        for c in ruleset.conditions:
            problem = _never_fails(c, rules.fields, ruleset)
            if problem:
                yield Finding("never_fails", path, f"condition on {c.field} ({c.says}): {problem}")


def _never_fails(c: Condition, fields: dict[str, Field], ruleset: RuleSet) -> str:
    for key, value in c.when.items():
        values = domain(fields[key], ruleset)
        if values is not None and fields[key].parse(value) not in values:
            return f"`when: {key}: {value}` matches no answer, so it never applies"
    values = domain(fields[c.field], ruleset)
    if values is not None and all(c.holds(v) for v in values):
        return f"holds for every possible answer ({', '.join(map(str, values[:8]))}{' …' if len(values) > 8 else ''})"
    return ""


# ── unasked_requirement ──────────────────────────────────────────────────────────────────────

def asked_fields(ruleset: RuleSet) -> set[str]:
    return {c.field for c in ruleset.conditions} | {k for c in ruleset.conditions for k in c.when}


def policy_sections(paths: KnowledgePaths) -> dict[str, tuple[Path, list[tuple[list[str], str]]]]:
    """Policy document id → (file, [(heading path, text)])."""
    docs = {}
    for path in paths.files(".md"):
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
        if "id" in post.metadata:
            _, sections = split_markdown(post.content)
            docs[str(post.metadata["id"])] = (path, [(s.headings, s.text) for s in sections])
    return docs


def unasked_requirements(rules: Rules, paths: KnowledgePaths, rule_files: dict[str, str]) -> Iterator[Finding]:
    spec = read_yaml(paths.dictionary_dir / "requirements.yaml") or {}
    headings = set(spec.get("sections") or [])
    requirements = spec.get("requirements") or []
    docs = policy_sections(paths)
    seen: set[int] = set()
    for ruleset in rules.by_place.values():
        if id(ruleset) in seen or not ruleset.complete:
            continue
        seen.add(id(ruleset))
        if ruleset.doc not in docs:
            yield Finding("unasked_requirement", rule_files.get(ruleset.region, ruleset.region),
                          f"complete: true, but its policy document {ruleset.doc!r} was not found")
            continue
        doc_path, sections = docs[ruleset.doc]
        asked = asked_fields(ruleset)
        for heads, text in sections:
            if not headings & set(heads):
                continue
            for line in filter(None, (ln.strip() for ln in text.splitlines())):
                for req in requirements:
                    phrase = next((p for p in req["phrases"] if p in line), None)
                    if phrase and not asked & set(req["fields"]):
                        yield Finding("unasked_requirement", rule_files.get(ruleset.region, ruleset.region),
                                      f"{doc_path.name} requires 「{line}」 ({phrase}), but the rules of "
                                      f"{ruleset.region} (complete: true) never ask {' or '.join(req['fields'])}")


# ── wording ──────────────────────────────────────────────────────────────────────────────────

def strings(value: Any, skip: set[str] = EXEMPT_KEYS) -> Iterator[str]:
    """Every string in a YAML value, except under exempt keys."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if str(k) not in skip:
                yield from strings(v, skip)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, skip)


def file_texts(path: Path) -> Iterable[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        post = frontmatter.loads(text)
        return [*strings(dict(post.metadata)), *post.content.splitlines()]
    return list(strings(parse_yaml(text)))


def wordings(paths: KnowledgePaths) -> Iterator[Finding]:
    entries = read_yaml(paths.dictionary_dir / "wordings.yaml") or []
    for path in paths.files(".md", ".yaml"):
        for text in file_texts(path):
            for entry in entries:
                rest = text
                for preferred in entry["use"]:
                    rest = rest.replace(preferred, "\0")
                variant = next((v for v in entry["avoid"] if v in rest), None)  # one finding per text
                if variant:
                    yield Finding("wording", shown(path), f"「{variant}」 in 「{text[:80]}」: say "
                                  f"「{' / '.join(entry['use'])}」 ({entry['fact']})")


# ── all checks ───────────────────────────────────────────────────────────────────────────────

def lint(paths: KnowledgePaths) -> list[Finding]:
    rules = Rules(paths.rules_dir, Gazetteer.load(paths.dictionary_dir))
    rule_files = {}
    for f in sorted(paths.rules_dir.glob("*.yaml")):
        data = read_yaml(f) or {}
        if "region" in data:
            rule_files[str(data["region"])] = shown(f)
    return [*never_fails(rules, rule_files), *unasked_requirements(rules, paths, rule_files), *wordings(paths)]


def cmd_lint(cfg: Config, args: argparse.Namespace) -> int:
    findings = lint(KnowledgePaths.from_config(cfg))
    if args.json:
        print(json.dumps([asdict(f) for f in findings], ensure_ascii=False))
    else:
        for f in findings:
            print(f"{f.check}\t{f.path}: {f.message}")
        print(f"{len(findings)} finding(s)" if findings else "knowledge base: no findings")
    return 1 if findings else 0
