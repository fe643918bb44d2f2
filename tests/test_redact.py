"""Logs and transcripts never hold a worker's ID-card or phone number in clear."""

from __future__ import annotations

import io
import logging

from bot.core.redact import install_log_redaction, redact


def test_redact_masks_id_cards_and_mobiles_but_not_other_numbers() -> None:
    text = "身份证11010519491231002X，电话 +86 138-1234-5678，合同24个月，2024年补助1000元"
    masked = redact(text)
    assert "11010519491231002X" not in masked and "110105********002X" in masked
    assert "138****5678" in masked and "1234-5678" not in masked
    assert "24个月" in masked and "1000元" in masked and "2024年" in masked


def test_installed_log_redaction_covers_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("redaction-test")
    root = logging.Logger("isolated-root")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    install_log_redaction(root)
    logger.parent, logger.propagate = root, True
    logger.warning("worker %s phone %s", "440106199001011234", "13812345678")
    try:
        raise ValueError("bad id 440106199001011234")
    except ValueError:
        logger.exception("failed for 13812345678")
    out = stream.getvalue()
    assert "440106199001011234" not in out and "13812345678" not in out
    assert "440106********1234" in out and "138****5678" in out


def test_redact_catches_spaced_dashed_full_width_ids_mobiles_and_luhn_bank_cards() -> None:
    cases = {
        "身份证 4401 0619 9001 0112 34": "440106********1234",
        "身份证440106-19900101-1234。": "440106********1234",
        "身份证４４０１０６１９９００１０１１２３４": "440106********1234",
        "老身份证440106900101123": "440106********1123",
        "手机１３８１２３４５６７８": "138****5678",
        "手机 138 1234 5678，2024年": "138****5678",
        "卡号 6222 0212 3456 7890 128": "6222***********0128",
        "卡号4111111111111111": "4111********1111",
    }
    for text, mask in cases.items():
        assert mask in redact(text), text
    for keep in ("卡号4111111111111112",  # fails the Luhn check: not a card number
                 "2023 2024 2025 2026年", "工号12345678901", "补助1000元，合同24个月"):
        assert redact(keep) == keep


def test_logs_never_show_the_bot_token(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    token = "123456789:AAH-secret_token_value_0123456789ab"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    stream = io.StringIO()
    root = logging.Logger("isolated-root-token")
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    install_log_redaction(root)
    logger = logging.getLogger("httpx-like")
    logger.parent, logger.propagate, logger.level = root, True, logging.DEBUG
    logger.debug("HTTP Request: POST %s", f"https://api.telegram.org/bot{token}/getUpdates")
    logger.info("token is %s", token)
    logger.warning("other bot987654321:ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ")
    out = stream.getvalue()
    assert "secret_token_value" not in out and "ZZZZZZZZ" not in out
    assert out.count("<token>") == 3
