"""One line of text as the appliance keeps and prints it.

Names, titles and notes reach the records from the screens, from configuration and
from OCR. Some on-screen keyboards send decomposed marks (NFD: "Lê" as another string
than the audit's "Lê"), OCR engines emit form feeds, and JSON can spell a lone
surrogate that no seal, PDF string or XML could encode. Every layer that writes such
a value into a record, a PDF's metadata or its printed mark cleans it the same way,
here, so that what is signed, printed and stored is one and the same string.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

# A string as json.dumps(ensure_ascii=False) writes it, quotes included, without the
# encoder json.dumps makes per call: for the hot paths that compose JSON from pieces
# (the outbox's acks, the audit chain, the central's result codes).
json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]

# Control characters and lone surrogates: never part of a name or a title.
_NOT_TEXT = frozenset({"Cc", "Cs"})


def one_line(raw: str) -> str:
    """NFC, every run of white space (a tab, a new line, a form feed too) made one
    space, other control characters and lone surrogates dropped, no space at either
    end."""
    words = ("".join(c for c in word if unicodedata.category(c) not in _NOT_TEXT)
             for word in unicodedata.normalize("NFC", raw).split())
    return " ".join(w for w in words if w)


def storable(raw: str, limit: int) -> str:
    """Text a message brought, kept as evidence (a dead letter's topic and reason): its
    first `limit` characters, with U+0000 and lone surrogates written as escapes. Both
    SQLite and PostgreSQL can then store it (a lone surrogate cannot be encoded, and
    PostgreSQL text holds no NUL); before, a reason quoting either raised at the INSERT
    and the receiver exited, again at each redelivery. Nothing else is changed: this
    is what the message said, not a name to clean."""
    cut = raw[:limit]
    if "\0" in cut:
        cut = cut.replace("\0", "\\0")
    if cut.isascii():
        return cut
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")
