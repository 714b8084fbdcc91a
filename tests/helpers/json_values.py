"""A JSON reading with every type spelled out, to compare two readers of the same bytes."""

from __future__ import annotations

from typing import Any


def typed(value: Any) -> Any:
    """Every type spelled out, every key order kept: 1 and 1.0 and True, 0.0 and -0.0,
    {"a":1,"b":2} and {"b":2,"a":1} are equal in Python but different readings."""
    if isinstance(value, dict):
        return ("dict", [(type(k).__name__, k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))
