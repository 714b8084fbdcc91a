"""Set a few keys of the TOML configuration in place, keeping everything else.

Why not load + dump: the installed appliance.toml is the commented template of
provisioning/appliance.toml, and a technician who later opens it must still find the
comments and the keys they set by hand. Only the lines of the keys set change; a key
that is absent is added at the end of its table (the table is added if needed).
Values are written with config.py's own TOML formatter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from appliance.system.config import _toml_value

_TABLE = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")


def _key_line(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(key)}\s*=")


def set_keys(text: str, values: Mapping[tuple[str, str], Any]) -> str:
    """`values` maps (table, key) to the new value; returns the new text."""
    lines = text.splitlines()
    for (table, key), value in values.items():
        new = f"{key} = {_toml_value(value)}"
        start = end = None
        for i, line in enumerate(lines):
            m = _TABLE.match(line)
            if m:
                if start is not None:
                    end = i
                    break
                if m.group(1) == table:
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
