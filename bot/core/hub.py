"""The hub: where channels meet the core. Inbox in, dialogue, outbox out — the same for every channel.

- `receive(...)` stores what a channel got (the inbox) and returns once it is durable; only then does
  the channel acknowledge it to its platform. A re-delivered message (same platform id) is ignored.
- Handling: one worker's messages are handled strictly in order, whatever the channel and however
  many processes share the database (each handler takes "the oldest pending message of this key"
  while holding the conversation's row lock); different workers are handled concurrently
  (`delivery.workers` per process). "Oldest" is the platform's order (Telegram's update_id) where
  it has one, and is checked again under the lock, so of two updates that reach two processes at
  once the earlier is handled first. The turn, the inbox row being marked handled and the replies
  going into the outbox are one transaction; if the database goes away mid-turn the transaction is
  rolled back and the message stays pending until it is back (answered late, never dropped).
- Delivery: a loop sends outbox rows through the channel that owns them, each marked delivered only
  when the platform confirmed it; permanent refusals are recorded (and the agent told, for a relayed
  message), transient ones retried with backoff; nothing one row does can stop the others.
- The helpdesk's re-announcements of unclaimed tickets run here too (in the primary process only).
- Several processes (`qiuxue serve --workers N`, `shared=True`): a process handles the messages it
  stored itself at once, and takes other keys only once their messages have waited `SHARED_GRACE`
  (a sibling died or is stuck), so siblings do not queue on the same conversation lock. Outbox rows
  carry the claiming slot (`owner`) so a restarted slot recovers only its own unfinished sends.
- `handled(...)` lets a channel whose platform waits for the answer in its own request (WeChat's
  passive reply) wait, up to a deadline, for a message to be handled — by this process (woken at
  once) or another sharing the database (polled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.core import metrics
from bot.core.channel import Channel, PermanentFailure, TransientFailure
from bot.core.dialogue import Dialogue
from bot.core.edge import clean_incoming, clean_text
from bot.core.inbox import Inbox, InboxItem, InboxKind, InboxStatus
from bot.core.messages import Incoming, Outgoing, incoming_from_dict, incoming_to_dict, to_payload
from bot.core.outbox import Claimed, Outbox, OutboxKind
from bot.core.store import Conversation, TranscriptLine
from bot.i18n import t
from common.clock import aware, utcnow
from ingest.versions import live_version

log = logging.getLogger(__name__)
WORKER_PUSHES = (OutboxKind.PUSH, OutboxKind.COPY)
SHARED_GRACE = timedelta(seconds=2)  # with sibling processes: how long another's stored message waits for it


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


class Hub:
    def __init__(self, dialogue: Dialogue, *, owner: str = "", primary: bool = True, shared: bool = False) -> None:
        """`owner`: this serving slot's name (outbox claims); `primary`: runs the once-per-deployment loops
        (Telegram polling and setWebhook, re-announcements); `shared`: sibling processes serve the same database."""
        self.owner, self.primary, self.shared = owner, primary, shared
        self.dialogue = dialogue
        self.cfg = dialogue.cfg
        self.sessions = dialogue.store.sessions
        self.helpdesk = dialogue.helpdesk
        self.inbox = Inbox(self.sessions)
        self.outbox = Outbox(self.sessions)
        self.channels: dict[str, Channel] = {}
        self._busy: set[str] = set()
        self._inbox_wake = asyncio.Event()
        self._outbox_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._slots = asyncio.Semaphore(self.cfg.delivery.workers)
        self._handled: dict[int, asyncio.Event] = {}  # inbox ids a channel waits for (`handled`)
        self._fresh: dict[str, None] = {}  # keys of messages this process just stored, handled here first
        self._last_scan = 0.0

    # -- channels ----------------------------------------------------------------------------------
    def register(self, channel: Channel) -> None:
        self.channels[channel.name] = channel
        self.dialogue.capabilities[channel.name] = channel.capabilities

    # -- in -----------------------------------------------------------------------------------------
    async def receive(self, msg: Incoming, external_id: str, seq: int | None = None) -> bool:
        """Store a worker's message durably (False: seen before); the channel may acknowledge it after this.
        `seq` is the platform's order (Telegram's update_id), if it has one: the worker's messages are
        handled in that order, whichever process received them.

        Cleaned first (storable text, personal numbers masked): nothing raw reaches the database."""
        msg = clean_incoming(msg)
        return await self._accept(msg.channel, external_id, f"{msg.channel}:{msg.user_id}",
                                  incoming_to_dict(msg), InboxKind.WORKER, seq)

    async def receive_platform(self, channel: str, external_id: str, key: str, payload: dict[str, Any],
                               seq: int | None = None) -> bool:
        """Store a platform update that the channel itself handles later (e.g. a staff group's), every text
        in it cleaned like a worker's."""
        return await self._accept(channel, external_id, key, _cleaned(payload), InboxKind.PLATFORM, seq)

    async def _accept(self, channel: str, external_id: str, key: str, payload: dict[str, Any],
                      kind: InboxKind, seq: int | None) -> bool:
        fresh = await asyncio.to_thread(self.inbox.accept, channel, external_id, key, payload, kind, seq)
        if fresh:
            metrics.MESSAGES_IN.labels(channel).inc()
            self._fresh[key] = None
            self._inbox_wake.set()
        return fresh

    async def handled(self, channel: str, external_id: str, deadline: float) -> int | None:
        """Wait until the monotonic `deadline` for a stored message to be handled, here or by another process;
        its inbox id, or None if it was not handled in time."""
        item_id = await asyncio.to_thread(self.inbox.find, channel, external_id)
        if item_id is None:
            return None
        event = self._handled.setdefault(item_id, asyncio.Event())
        try:
            while not await asyncio.to_thread(self.inbox.finished, item_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, self.cfg.delivery.poll_seconds))
                event.clear()
            return item_id
        finally:
            self._handled.pop(item_id, None)

    # -- running --------------------------------------------------------------------------------------
    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.outbox.recover, set(self.channels), self.owner)
        for item_id in recovered:
            await self._uncertain(item_id)
        self._tasks = [asyncio.create_task(self._inbox_loop(), name="qiuxue-inbox"),
                       asyncio.create_task(self._outbox_loop(), name="qiuxue-outbox")]
        if self.helpdesk.staffed and self.primary:
            self._tasks.append(asyncio.create_task(self._reannounce_loop(), name="qiuxue-reannounce"))
        for channel in self.channels.values():
            await channel.start()

    async def stop(self) -> None:
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.stop()
        # Cancel until each loop has really ended: on Python 3.11 `asyncio.wait_for` (used by `_wait`) can
        # swallow a cancellation that arrives as its inner wait completes, and the loop would go on forever.
        for task in self._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
        self._tasks = []

    def kick(self) -> None:
        """Look at the inbox and outbox now (after something was written outside the hub)."""
        self._inbox_wake.set()
        self._outbox_wake.set()

    async def _wait(self, event: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self.cfg.delivery.poll_seconds)
        event.clear()

    # -- handling -------------------------------------------------------------------------------------
    async def _inbox_loop(self) -> None:
        while True:
            try:
                keys, self._fresh = list(self._fresh), {}
                if self._scan_due():
                    before = utcnow() - SHARED_GRACE if self.shared else None
                    keys += await asyncio.to_thread(self.inbox.pending_keys, 100, before)
                for key in dict.fromkeys(keys):
                    if key in self._busy:
                        self._fresh[key] = None  # its drain may have looked already: look again when it ends
                    else:
                        self._busy.add(key)
                        asyncio.create_task(self._drain(key))
            except Exception:  # the database may be restarting: keep trying
                log.exception("reading the inbox failed; retrying")
            await self._wait(self._inbox_wake)

    def _scan_due(self) -> bool:
        """Alone, the inbox is read on every wake; beside siblings, once per poll interval (their messages)."""
        if not self.shared:
            return True
        now = time.monotonic()
        if now - self._last_scan < self.cfg.delivery.poll_seconds:
            return False
        self._last_scan = now
        return True

    async def _drain(self, key: str) -> None:
        """Handle the key's waiting messages, oldest first, one at a time."""
        try:
            async with self._slots:
                while (item := await asyncio.to_thread(self._oldest, key)) is not None:
                    await self._handle(item)
        except Exception:  # e.g. the database is restarting: the inbox loop comes back to this key
            log.exception("handling messages of %s failed; they stay in the inbox", key)
            await asyncio.sleep(self.cfg.delivery.backoff_seconds)
        finally:
            self._busy.discard(key)
            if key in self._fresh:
                self._inbox_wake.set()

    def _oldest(self, key: str) -> InboxItem | None:
        with self.sessions() as s:
            return self.inbox.oldest(s, key)

    async def _handle(self, item: InboxItem) -> None:
        started = time.monotonic()
        try:
            if item.kind == InboxKind.WORKER:
                msg = incoming_from_dict(item.payload)
                turn = await asyncio.to_thread(self.dialogue.turn, msg, item.id, True)
                if not (turn.duplicate or turn.deferred):
                    for reply in turn.replies:
                        action = reply.meta.get("action")
                        if action:
                            metrics.ANSWERS.labels(str(action)).inc()
                    if turn.opened:
                        metrics.HANDOFFS.inc()
                    metrics.REPLY_SECONDS.labels(msg.channel).observe(time.monotonic() - started)
            else:
                channel = self.channels.get(item.channel)
                if channel is None:
                    raise LookupError(f"no channel {item.channel!r} in this process")
                await channel.handle_platform(item.payload)
                await asyncio.to_thread(self._done, item.id)
        except OperationalError:  # the database went away (restart, failover): the turn rolled back, nothing
            raise                 # is lost; the message stays pending and is handled again once it is back
        except Exception as exc:  # one bad message never blocks the ones after it
            log.exception("message %s (%s) could not be handled", item.id, item.channel)
            await asyncio.to_thread(self._failed, item, f"{type(exc).__name__}: {exc}")
        if (waiting := self._handled.get(item.id)) is not None:
            waiting.set()
        self._outbox_wake.set()

    def _done(self, item_id: int) -> None:
        with self.sessions.begin() as s:
            item = s.get(InboxItem, item_id)
            if item is not None and item.status == InboxStatus.PENDING:
                Inbox.finish(item)

    def _failed(self, item: InboxItem, error: str) -> None:
        """Recorded as failed; a worker is asked to send it again (never a silent drop)."""
        self.inbox.fail(item.id, error)
        if item.kind != InboxKind.WORKER:
            return
        msg = incoming_from_dict(item.payload)
        lang = "zh"
        with self.sessions.begin() as s:
            conv = s.scalars(select(Conversation).filter_by(channel=msg.channel, user_id=msg.user_id)).first()
            lang = conv.lang if conv is not None else lang
            self.outbox.add(s, msg.channel, msg.user_id, to_payload(Outgoing(t("please_resend", lang))))

    # -- delivery -------------------------------------------------------------------------------------
    async def _outbox_loop(self) -> None:
        while True:
            try:
                claimed = await asyncio.to_thread(self.outbox.claim, set(self.channels), 50, self.owner)
                if claimed:
                    await asyncio.gather(*(self._deliver(item) for item in claimed))
                    continue  # more may be waiting behind what was just sent
            except Exception:
                log.exception("the delivery loop failed; retrying")
            await self._wait(self._outbox_wake)

    async def _deliver(self, item: Claimed) -> None:
        channel = self.channels[item.channel]
        try:
            await asyncio.to_thread(self._check_capabilities, channel, item)
            ref = await channel.send(item)
        except PermanentFailure as exc:
            await self._give_up(item, str(exc) or type(exc).__name__)
            return
        except Exception as exc:  # transient, or an error nobody classified: retry with backoff, then give up
            reason = str(exc) or type(exc).__name__
            if not isinstance(exc, TransientFailure):
                log.warning("delivery of outbox row %s failed: %s", item.id, reason)
            if item.attempts >= self.cfg.delivery.max_attempts:
                await self._give_up(item, reason)
            else:
                backoff = self.cfg.delivery.backoff_seconds * 2 ** (item.attempts - 1)
                delay = timedelta(seconds=max(backoff, getattr(exc, "retry_after", None) or 0.0))
                await self.record(self.outbox.retry_later, item.id, reason, delay)
            return
        await self.record(self.outbox.sent, item.id, ref)
        metrics.MESSAGES_OUT.labels(item.channel, "sent").inc()
        if item.ticket_event_id is not None:
            await self.record(self.helpdesk.delivered, item.ticket_event_id)

    async def record(self, write: Callable[..., Any], *args: Any) -> Any:
        """Record what the platform said about a row, however long the database is away (a restart): a row
        left `sending` would hold up every later one to the same address."""
        delay = self.cfg.delivery.backoff_seconds
        while True:
            try:
                return await asyncio.to_thread(write, *args)
            except OperationalError:
                log.warning("the database is unavailable; recording the delivery again in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _check_capabilities(self, channel: Channel, item: Claimed) -> None:
        """Refuse, without calling the platform, what the channel says it cannot do."""
        caps = channel.capabilities
        if item.kind == OutboxKind.COPY and not caps.copies_media:
            raise PermanentFailure(t("undelivered_reason_media", "zh"))
        if item.kind in WORKER_PUSHES and caps.push_window is not None:
            last = self._last_heard(item.channel, item.address)
            if last is None or utcnow() - last > caps.push_window:
                raise PermanentFailure(t("undelivered_reason_window", "zh",
                                         hours=int(caps.push_window.total_seconds() // 3600)))

    def _last_heard(self, channel: str, user_id: str):  # type: ignore[no-untyped-def]
        with self.sessions() as s:
            moment = s.scalar(select(func.max(TranscriptLine.created_at))
                              .join(Conversation, Conversation.id == TranscriptLine.conversation_id)
                              .where(Conversation.channel == channel, Conversation.user_id == user_id,
                                     TranscriptLine.direction == "in"))
            return aware(moment) if moment is not None else None

    async def _give_up(self, item: Claimed, reason: str) -> None:
        log.warning("outbox row %s to %s could not be delivered: %s", item.id, item.channel, reason)
        await self.record(self.outbox.failed, item.id, reason)
        metrics.MESSAGES_OUT.labels(item.channel, "failed").inc()
        if item.ticket_event_id is not None and item.kind in WORKER_PUSHES:
            await asyncio.to_thread(self.helpdesk.undelivered, item.ticket_event_id, reason)
        self._outbox_wake.set()

    async def _uncertain(self, item_id: int) -> None:
        row = await asyncio.to_thread(self.outbox.get, item_id)
        if row is not None and row.ticket_event_id is not None and row.kind in WORKER_PUSHES:
            await asyncio.to_thread(self.helpdesk.undelivered, row.ticket_event_id, row.error)

    # -- the helpdesk's clock -------------------------------------------------------------------------
    async def _reannounce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.helpdesk.reannounce_check_seconds)
            try:
                if await asyncio.to_thread(self.helpdesk.reannounce_due):
                    self._outbox_wake.set()
            except Exception:  # keep watching; the next round retries
                log.exception("re-announcing unclaimed tickets failed")

    # -- health ----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self.sessions() as s:
            s.execute(select(1))
        live = live_version(self.sessions)
        metrics.INBOX_PENDING.set(self.inbox.count())
        metrics.OPEN_TICKETS.set(len(self.helpdesk.open_tickets()))
        return {"status": "ok", "database": "ok", "index_version": live.version if live else None,
                "channels": sorted(self.channels)}
