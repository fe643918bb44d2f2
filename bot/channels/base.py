"""What a channel module builds on: the channel interface, its capabilities, delivery failures, payloads.

See `bot/core/channel.py` for the contract (a new channel is one module here with a `create(cfg, hub)`).
"""

from bot.core.channel import (
    Capabilities,
    Channel,
    DeliveryFailure,
    PermanentFailure,
    PushOnly,
    TransientFailure,
    outgoing_from,
    to_payload,
)

__all__ = ["Capabilities", "Channel", "DeliveryFailure", "PermanentFailure", "PushOnly", "TransientFailure", "outgoing_from",
           "to_payload"]
