"""The depth and number pre-scan (`wire._check_depth`) against an independent reader.

The scan takes a fast path when no bracket stands inside a string (everything but
quotes and brackets deleted, then every pair of adjacent quotes) and blanks strings
one by one otherwise. The reference here is Python's own JSON reader: for valid JSON,
the nesting is the depth of what json.loads returns, and an integer outside strings is
what it reads as an int. Texts are built with json.dumps from values whose strings
hold brackets, quotes, backslashes, escapes and long digit runs (a sha256, the zero
hash every audit chain starts from), compact and indented, ASCII and not.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from appliance.sync import wire
from appliance.sync.errors import WireError

STRINGS = ["", "a", "[", "]", "{", "}", "[[[[", "]]]]", '"', '\\', '\\"[', "\\u0022",
           "a[b]c", "}{", ":", "0" * 64, "1" * 30, "e" + "5" * 25, "a" + "7" * 22,
           "ờ[ấ]", "\u2028", "3f" + "9" * 40, "x\n[y"]
NUMBERS = [0, -1, 12, 10**19, -(10**19), 10**20, 10**25, -(10**30), 1.5, -2.25e-7, 1e300,
           1795813047.481684]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth >= 12 or roll < 0.35:
        return rng.choice([*STRINGS, *NUMBERS, None, True, False])
    if roll < 0.65:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(STRINGS) + str(i): _value(rng, depth + 1)
            for i in range(rng.randint(0, 3))}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _longest_integer(value: Any) -> int:
    """Characters of the longest integer outside strings (json.dumps writes int as is)."""
    if isinstance(value, dict):
        return max((_longest_integer(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_longest_integer(v) for v in value), default=0)
    if type(value) is int:
        return len(str(abs(value)))
    return 0


def _refused(text: bytes, max_depth: int) -> bool:
    try:
        wire._check_depth(text, max_depth)  # noqa: SLF001 - the scan itself is tested
    except WireError:
        return True
    return False


@pytest.mark.parametrize("seed", range(4))
def test_the_scan_refuses_exactly_what_is_too_deep_or_has_too_long_an_integer(
        seed: int) -> None:
    rng = random.Random(seed)
    fast = 0
    for _ in range(3000):
        value = _value(rng, 0)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5,
                          indent=rng.choice([None, None, 1])).encode("utf-8")
        max_depth = rng.choice([1, 2, 3, 6, 16])
        want = (_depth(value) > max_depth
                or _longest_integer(value) > wire.MAX_NUMBER_CHARS)
        assert _refused(text, max_depth) is want, (max_depth, text[:300])
        fast += b'"' not in text.translate(
            wire._SQUARE_BRACKETS, wire._NOT_STRUCTURE_BYTES).replace(b'""', b"")  # noqa: SLF001
    # Both ways were taken: most texts here have a bracket inside some string, but
    # not all.
    assert 0 < fast < 3000


@pytest.mark.parametrize(("text", "refused"), [
    # Deep inside strings only: not nesting.
    (b'{"a":"' + b"[" * 40 + b'"}', False),
    # Deep outside, with brackets inside strings too (the slow way).
    (b'{"a":"]]"' + b',"b":' + b"[" * 17 + b"]" * 17 + b"}", True),
    # Deep outside, no bracket inside a string (the fast way).
    (b'{"a":' + b"[" * 17 + b"]" * 17 + b"}", True),
    (b'{"a":' + b"[" * 15 + b"]" * 15 + b"}", False),
    # A long run of digits: inside a string (a zero hash), outside (an integer), and
    # in an exponent or a fraction (outside a string, refused like an integer).
    (b'{"prev":"' + b"0" * 64 + b'"}', False),
    (b'{"n":' + b"9" * 21 + b"}", True),
    (b'{"n":1e' + b"0" * 21 + b"}", True),
    (b'{"n":0.' + b"1" * 25 + b"}", True),
    (b'{"n":-' + b"1" * 21 + b"}", True),
])
def test_hand_made_cases(text: bytes, refused: bool) -> None:
    assert _refused(text, 16) is refused
