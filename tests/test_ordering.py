"""One worker's messages are handled in the platform's order (Telegram's update_id), whichever arrived first
in the inbox: the check is made again under the conversation's lock, so a process that picked a later
message while an earlier one was being stored leaves it for the earlier one."""

from __future__ import annotations

from bot.core.dialogue import Dialogue
from bot.core.inbox import Inbox
from bot.core.messages import Incoming, incoming_to_dict
from common.settings import Config
from tests.conftest import unique_user


def test_an_earlier_update_stored_later_is_still_handled_first(db_cfg: Config) -> None:
    dialogue = Dialogue(db_cfg)
    inbox = Inbox(dialogue.store.sessions)
    user = unique_user("ord")
    key = f"test:{user}"
    first, second = Incoming("test", user, "第一条"), Incoming("test", user, "第二条")
    assert inbox.accept("test", f"{user}-2", key, incoming_to_dict(second), seq=502)  # reached the inbox first
    assert inbox.accept("test", f"{user}-1", key, incoming_to_dict(first), seq=501)
    first_id, second_id = inbox.find("test", f"{user}-1"), inbox.find("test", f"{user}-2")
    with dialogue.store.sessions() as s:
        oldest = Inbox.oldest(s, key)
        assert oldest is not None and oldest.id == first_id

    early = dialogue.turn(second, second_id, True)  # a process that picked the later one before the earlier came
    assert early.deferred and early.replies == [] and not inbox.finished(second_id)
    assert dialogue.store.transcript("test", user) == []  # nothing done for it yet

    assert not dialogue.turn(first, first_id, True).deferred
    assert dialogue.turn(second, second_id, True).replies
    said = [line.text for line in dialogue.store.transcript("test", user) if line.direction == "in"]
    assert said == ["第一条", "第二条"]
    assert inbox.finished(first_id) and inbox.finished(second_id)
