"""Chinese text handling for retrieval: jieba tokens with our dictionary, synonym folding, language.

The user dictionary, synonym groups and stopwords are data in `knowledge/dictionary/`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from pathlib import Path

import jieba

from common.yamlio import read_yaml

jieba.setLogLevel(logging.WARNING)

CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
TOKEN_OK = re.compile(r"[\w\u3400-\u9fff]")


def detect_language(text: str) -> str:
    """'zh' if the text has Chinese characters (or no letters at all), else 'en'."""
    if CJK.search(text):
        return "zh"
    return "en" if LATIN.search(text) else "zh"


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower-case Latin, collapsed whitespace."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


class Tokenizer:
    """jieba with the project's user dictionary; synonyms folded to their group's first word."""

    def __init__(self, dictionary_dir: Path) -> None:
        digest = hashlib.sha256(jieba.__version__.encode())
        for name in ("userdict.txt", "synonyms.yaml", "stopwords.txt"):
            path = dictionary_dir / name
            digest.update(name.encode() + (path.read_bytes() if path.exists() else b"-"))
        self.fingerprint = digest.hexdigest()[:16]  # same fingerprint, same tokens for the same text
        self._jieba = jieba.Tokenizer()
        userdict = dictionary_dir / "userdict.txt"
        if userdict.exists():
            self._jieba.load_userdict(str(userdict))
        self.synonyms: dict[str, str] = {}
        syn_file = dictionary_dir / "synonyms.yaml"
        for group in (read_yaml(syn_file) if syn_file.exists() else []) or []:
            canonical = normalise(str(group[0]))
            for word in group:
                word = normalise(str(word))
                self.synonyms.setdefault(word, canonical)
                self._jieba.add_word(word, freq=max(self._jieba.FREQ.get(word, 0), 2000))
        stop_file = dictionary_dir / "stopwords.txt"
        self.stopwords = set(stop_file.read_text(encoding="utf-8").split()) if stop_file.exists() else set()

    def tokens(self, text: str) -> list[str]:
        """Search tokens: jieba's fine-grained cut, stopwords and punctuation dropped, synonyms folded."""
        out = []
        for tok in self._jieba.cut_for_search(normalise(text)):
            tok = tok.strip()
            if not tok or tok in self.stopwords or not TOKEN_OK.search(tok):
                continue
            out.append(self.synonyms.get(tok, tok))
        return out
