"""`appliance config reference|check|show`: the configuration's one reference, generated.

Why generated: a field technician fixing `/etc/appliance/appliance.toml` in an office
with no connection has this reference and nothing else, so it must never drift from
the schema. The schema is the dataclasses of ``system/config.py``; each key's meaning
is the comment written directly above it there (or at the end of its line), each
section's is its class docstring. ``reference_markdown()`` turns them into Markdown,
committed as ``provisioning/config-reference.md``; a test fails when the two differ or
when a key has no comment, so a new key cannot ship undocumented.

Comments rather than a ``metadata={"doc": ...}`` per field: the file stays plain
dataclasses that read like the TOML they describe, and engineers adding a key write
one comment line, as they already did.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import re
import sys
import tokenize
from dataclasses import MISSING, Field, dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.errors import ConfigError

REFERENCE_PATH = Path("provisioning/config-reference.md")
# A ConfigError message starts with the key it is about ("web.threads: ...",
# "device.sequence_first/sequence_last: ..."); the reference entry is looked up by it.
_KEY_AT_START = re.compile(r"^([a-z_]+(?:\.[a-z_]+)?)[:/ ]")


@dataclass(frozen=True)
class KeyDoc:
    """One key of the file: where it lives, its type, default and meaning."""

    section: str
    name: str
    type_word: str
    default: Any
    doc: str

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def default_toml(self) -> str:
        return config_mod._toml_value(self.default)


def _comments_by_line(source: str) -> dict[int, str]:
    """Line number -> comment text (without '#') for every comment in ``source``."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _field_comments(source: str) -> dict[tuple[str, str], str]:
    """(class name, field name) -> the comment block above the field, or its end-of-line
    comment. A blank line or code between comment and field ends the block, so a comment
    about a group of fields documents the first of them only (the rest need their own).
    """
    comments = _comments_by_line(source)
    lines = source.splitlines()
    out: dict[tuple[str, str], str] = {}
    for cls in ast.walk(ast.parse(source)):
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            block: list[str] = []
            line = stmt.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                block.insert(0, comments.get(line, ""))
                line -= 1
            trailing = comments.get(stmt.lineno)
            if trailing and not lines[stmt.lineno - 1].strip().startswith("#"):
                block.append(trailing)
            out[(cls.name, stmt.target.id)] = " ".join(b for b in block if b)
    return out


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _clean_docstring(cls: type) -> str:
    """The class docstring as one paragraph per blank-line block (Markdown reflows)."""
    doc = inspect.getdoc(cls) if cls.__doc__ else None
    if not doc:
        return ""
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
    return "\n\n".join(paragraphs)


def sections() -> list[tuple[str, str, list[KeyDoc]]]:
    """Every section of the file: (name, its docstring, its keys), in schema order."""
    comments = _field_comments(inspect.getsource(config_mod))
    out = []
    for section in fields(Config):
        cls = get_type_hints(Config)[section.name]
        hints = get_type_hints(cls)
        keys = [
            KeyDoc(section.name, f.name, config_mod.TYPE_WORDS.get(hints[f.name], "a value"),
                   _default(f), comments.get((cls.__name__, f.name), ""))
            for f in fields(cls)
        ]
        out.append((section.name, _clean_docstring(cls), keys))
    return out


def all_keys() -> dict[str, KeyDoc]:
    return {k.key: k for _name, _doc, keys in sections() for k in keys}


def undocumented() -> list[str]:
    """Keys with no comment in config.py (a test keeps this empty)."""
    return [k for k, d in all_keys().items() if not d.doc]


def reference_markdown() -> str:
    """The whole reference as Markdown; byte-equal to provisioning/config-reference.md."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `appliance config reference` from appliance/system/config.py;",
        "     do not edit by hand: change the comment above the key there and regenerate. -->",
        "",
        "One TOML file: `$APPLIANCE_CONFIG`, else `/etc/appliance/appliance.toml`, else the",
        "built-in defaults below. Every key is optional. `appliance config check [FILE]`",
        "validates a file and names a wrong key with the value expected there; every",
        "service refuses to start (exit status 2) on the same errors.",
        "",
    ]
    for name, doc, keys in sections():
        out += [f"## [{name}]", ""]
        if doc:
            out += [doc, ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for k in keys:
            default = k.default_toml().replace("|", "\\|")
            meaning = k.doc.replace("|", "\\|")
            kind = k.type_word.removeprefix("a ").removeprefix("an ")
            out.append(f"| `{k.name}` | {kind} | `{default}` | {meaning} |")
        out.append("")
    return "\n".join(out)


def explain(error: ConfigError | str) -> str:
    """The error with the reference entry of the key it names, when one is found."""
    message = str(error)
    match = _KEY_AT_START.match(message)
    if not match:
        return message
    entry = all_keys().get(match.group(1))
    if entry is None:
        return message
    return (f"{message}\n  {entry.key}: expected {entry.type_word}, default "
            f"{entry.default_toml()}: {entry.doc}")


# --- the command -----------------------------------------------------------------------


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", required=True)
    check = sub.add_parser("check", help="validate a configuration file; exit 2 naming "
                                         "the bad key and the value expected")
    check.add_argument("file", nargs="?", default=None,
                       help="the file (default: --config, $APPLIANCE_CONFIG, then "
                            f"{config_mod.DEFAULT_CONFIG_PATH})")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    sub.add_parser("show", help="print the configuration in effect, defaults filled in")
    reference = sub.add_parser("reference", help="print the Markdown reference of every key")
    reference.add_argument("--output", default=None,
                           help=f"write it to this file instead (e.g. {REFERENCE_PATH})")


def cmd_config(args: argparse.Namespace) -> int:
    """0 when the file is valid (or the reference was written), 2 naming the bad key."""
    what = args.config_command
    if what == "reference":
        text = reference_markdown()
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    path = getattr(args, "file", None) or getattr(args, "config", None)
    try:
        config = config_mod.load(path)
    except ConfigError as e:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": str(e)}, ensure_ascii=False))
        else:
            print(f"appliance config: {explain(e)}", file=sys.stderr)
        return 2
    if what == "show":
        print(config_mod.dump(config))
    elif getattr(args, "json", False):
        print(json.dumps({"ok": True}))
    else:
        print(f"{path or 'configuration'}: ok")
    return 0
