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
