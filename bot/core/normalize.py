"""Text normalisation at the edge: whatever a worker, an agent or a file sends becomes storable text.

SQLite (via Python's sqlite3) refuses lone surrogates, PostgreSQL refuses U+0000; other C0
control characters only confuse logs and terminals. `storable` makes any `str` safe for both:
lone surrogates become U+FFFD, control characters other than newline and tab are dropped
(CR and CRLF become a newline; C1 controls such as U+0085 go too), and the result is in Unicode NFC.
"""

from __future__ import annotations

import re
import unicodedata

REPLACEMENT = "\ufffd"
# C0 controls except \t (09) and \n (0a) — \r is handled first —, DEL and the C1 controls (80–9f).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")


def _fix_surrogates(text: str) -> str:
    """Join surrogate pairs into their character; replace lone surrogates with U+FFFD."""
    if not SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def storable(text: str | None) -> str:
    """`text` as valid, NFC-normalised Unicode without NUL and other control characters."""
    if not text:
        return ""
    text = _fix_surrogates(str(text)).replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", CONTROL.sub("", text))


def has_lone_surrogate(text: str) -> bool:
    """True if `text` cannot be encoded as UTF-8 because of an unpaired surrogate."""
    return bool(SURROGATE.search(text))
