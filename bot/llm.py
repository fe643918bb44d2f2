"""Optional language model (any OpenAI-compatible endpoint, through langchain) that may only
rephrase and combine retrieved passages, citing them as [1], [2] …

Anything that goes wrong — timeout, HTTP error, an answer without a valid citation — returns
None, and the caller keeps the offline answer.
"""

from __future__ import annotations

import logging
import os
import re

from common.settings import Config
from ingest.stored import StoredChunk

log = logging.getLogger(__name__)
CITATION = re.compile(r"\[(\d+)\]")

PROMPT = {
    "zh": ("你是求学圆梦行动的问答助手。只能根据下面编号的资料回答，不得加入资料以外的信息；"
           "每句话后用[编号]标注出处；资料不足就说不知道。回答简短（不超过4句），用中文。"),
    "en": ("You answer questions about the 求学圆梦 programme. Use ONLY the numbered passages below, add "
           "nothing else, cite each sentence as [n], and say you don't know if they are not enough. "
           "At most 4 short sentences, in English."),
}


class LlmRephraser:
    def __init__(self, base_url: str, model: str, api_key: str, timeout: float) -> None:
        from langchain_openai import ChatOpenAI

        self._chat = ChatOpenAI(base_url=base_url, model=model, api_key=api_key or "none",
                                timeout=timeout, max_retries=0, temperature=0)

    @classmethod
    def from_config(cls, cfg: Config) -> LlmRephraser:
        llm = cfg.llm
        return cls(str(llm.base_url), str(llm.model), os.environ.get(str(llm.api_key_env), ""),
                   float(llm.timeout_seconds))

    def rephrase(self, question: str, passages: list[StoredChunk], lang: str) -> tuple[str, list[int]] | None:
        """(answer text, indexes of the passages it cites), or None to keep the offline answer."""
        numbered = "\n".join(f"[{i + 1}] 《{p.meta.get('title', '')}》{p.text}" for i, p in enumerate(passages))
        messages = [("system", PROMPT.get(lang, PROMPT["zh"])), ("human", f"资料：\n{numbered}\n\n问题：{question}")]
        try:
            reply = self._chat.invoke(messages)
        except Exception as exc:  # network, timeout, HTTP or parsing error: fall back
            log.warning("language model failed, using the offline answer: %s", type(exc).__name__)
            return None
        text = str(reply.content).strip()
        cited = sorted({int(n) - 1 for n in CITATION.findall(text) if 0 < int(n) <= len(passages)})
        if not text or not cited:
            log.warning("language model answer had no valid citation; using the offline answer")
            return None
        return text, cited
