"""The channel interface: what a messaging platform plugs into the core with (errbot's backends are the model).

Channel modules import it as `bot.channels.base`; it lives in the core so that the core never imports a channel.

A channel does three things and nothing else:

1. **In**: turn its platform's input into `Incoming` and hand it to `hub.receive(...)`, which stores it
   durably (the inbox) before the channel acknowledges it to the platform. Anything the platform
   sends that is not a worker's message (e.g. a staff group) goes in as a raw platform update and
   comes back to `handle_platform`.
2. **Out**: `send(item)` delivers one outbox row — a reply, a push to a worker who did not just
   write (agent reply, queue news), or a staff-side line — and returns the platform's message id.
   It raises `PermanentFailure` when the platform refuses for good and `TransientFailure` when a
   retry may work; the core records either and carries on with other messages.
3. **Says what it cannot do**: `capabilities` — no buttons (the core then shows numbered options
   and maps a typed digit back to the choice), a push window that closes (the core refuses pushes
   outside it with a clear reason instead of calling the platform), photos it cannot copy, and a
   `reply_hold` when the platform's own request can carry the answer (WeChat's passive reply): the
   turn's replies then wait that long in the outbox for the channel to take (`Outbox.take_passive`).

Ordering, retries with backoff, the helpdesk relay and exactly-once handling live in the core
(`bot/core/hub.py`), never here; so does the numbering of options (`bot/core/choices.py`). A channel module exposes `create(cfg, hub) -> Channel`; list its
name in `server.channels` and `qiuxue serve` hosts it (its webhook routes join the one ASGI app).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from bot.core.messages import Capabilities, outgoing_from, to_payload

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from bot.core.outbox import Claimed


class DeliveryFailure(Exception):
    """A send did not happen."""


class PermanentFailure(DeliveryFailure):
    """The platform refused for good (blocked, deleted topic, outside a window, unsupported)."""


class TransientFailure(DeliveryFailure):
    """A retry may work (network, timeout, rate limit); `retry_after`: the platform said not before this many
    seconds (a 429's retry_after), which the outbox's backoff respects."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Channel(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self) -> None:
        """Begin receiving (polling loop, webhook registration …)."""

    async def stop(self) -> None: ...

    async def send(self, item: Claimed) -> str:
        """Deliver one outbox row; the platform's message id(s). Raises a `DeliveryFailure`."""

    async def handle_platform(self, payload: dict[str, Any]) -> None:
        """A stored platform update that is not a worker message (e.g. a staff group's)."""

    def routes(self) -> list[BaseRoute]:
        """HTTP routes this channel adds to the `qiuxue serve` app (webhooks)."""




class PushOnly:
    """Defaults for a channel that only receives pushes from the hub (its input comes another way)."""

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def routes(self) -> list[BaseRoute]:
        return []

    async def handle_platform(self, payload: dict[str, Any]) -> None:
        """No platform updates of its own."""


__all__ = ["Capabilities", "Channel", "DeliveryFailure", "PermanentFailure", "PushOnly", "TransientFailure",
           "outgoing_from", "to_payload"]
