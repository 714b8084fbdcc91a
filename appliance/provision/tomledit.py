"""Set a few keys of the TOML configuration in place, keeping everything else.

Why not load + dump: the installed appliance.toml is the commented template of
provisioning/appliance.toml, and a technician who later opens it must still find the
comments and the keys they set by hand. Only the lines of the keys set change; a key
that is absent is added at the end of its table (the table is added if needed).
Values are written with config.py's own TOML formatter.

The result is always read back with tomllib and compared with what was asked: a
form this line editor does not change in place (dotted keys, an inline table, a
quoted key, a multi-line string) would have made a valid file invalid, so then the
file is written anew from its parsed tables, every value kept, its comments lost.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

from appliance.system.config import _toml_value

# `[table]`, spaces inside the brackets allowed (`[ paths ]` is valid TOML: missed, it
# made an edit of [mqtt] land in the table after it).
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")
# Any table header, `[[array]]` included: where a table's lines end.
_ANY_TABLE = re.compile(r"^\s*\[")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_line(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(key)}\s*=")


def set_keys(text: str, values: Mapping[tuple[str, str], Any]) -> str:
    """`values` maps (table, key) to the new value; returns the new text (see the
    module docstring). Raises tomllib.TOMLDecodeError when `text` is not TOML."""
    wanted = tomllib.loads(text)
    for (table, key), value in values.items():
        section = wanted.setdefault(table, {})
        if not isinstance(section, dict):
            raise ValueError(f"{table} is not a table in this file")
        section[key] = value
    edited = _edit_lines(text, values)
    try:
        if tomllib.loads(edited) == wanted:
            return edited
    except tomllib.TOMLDecodeError:
        pass
    return _dump_tables(wanted)


def _dump_tables(data: Mapping[str, Any]) -> str:
    """A whole file from parsed tables of plain values (appliance.toml's shape)."""
    out: list[str] = []
    for name, value in data.items():
        if not isinstance(value, dict):
            out.append(f"{_key(name)} = {_toml_value(value)}")
    for name, table in data.items():
        if isinstance(table, dict):
            out += ["", f"[{_key(name)}]"]
            for key, value in table.items():
                if isinstance(value, dict | list):
                    raise ValueError(f"{name}.{key}: nested values are not configuration")
                out.append(f"{_key(key)} = {_toml_value(value)}")
    return "\n".join(out).lstrip("\n") + "\n"


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _toml_value(name)


def _edit_lines(text: str, values: Mapping[tuple[str, str], Any]) -> str:
    # "\n" only: str.splitlines() also cuts at U+2028, U+0085 and others, which TOML
    # allows inside comments and strings.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for (table, key), value in values.items():
        new = f"{key} = {_toml_value(value)}"
        start = end = None
        for i, line in enumerate(lines):
            if start is not None and _ANY_TABLE.match(line):
                end = i
                break
            m = _TABLE.match(line)
            if m and m.group(1) == table:
                start = i
        if start is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += [f"[{table}]", new]
            continue
        end = len(lines) if end is None else end
        pattern = _key_line(key)
        for i in range(start + 1, end):
            if pattern.match(lines[i]):
                lines[i] = new
                break
        else:
            # After the table's last non-blank line, so it stays inside the table.
            at = end
            while at > start + 1 and not lines[at - 1].strip():
                at -= 1
            lines.insert(at, new)
    return "\n".join(lines) + "\n"
