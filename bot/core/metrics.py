"""Prometheus metrics of the serving process (`GET /metrics`); every name starts with `qiuxue_`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()
MESSAGES_IN = Counter("qiuxue_messages_in", "Messages received from workers and staff, by channel",
                      ["channel"], registry=REGISTRY)
MESSAGES_OUT = Counter("qiuxue_messages_out", "Messages delivered (platform confirmed), by channel and result",
                       ["channel", "result"], registry=REGISTRY)
ANSWERS = Counter("qiuxue_answers", "Grounded answers by action (answer, no_answer, …)", ["action"], registry=REGISTRY)
HANDOFFS = Counter("qiuxue_handoffs", "Conversations handed to the helpdesk", registry=REGISTRY)
OPEN_TICKETS = Gauge("qiuxue_open_tickets", "Helpdesk tickets not yet resolved", registry=REGISTRY)
INBOX_PENDING = Gauge("qiuxue_inbox_pending", "Received messages not yet handled", registry=REGISTRY)
REPLY_SECONDS = Histogram("qiuxue_reply_seconds", "From receipt to the reply being in the outbox, by channel",
                          ["channel"], registry=REGISTRY,
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def exposition() -> bytes:
    return generate_latest(REGISTRY)
