"""The catalogue of BHXH procedures and papers, loaded from a data file.

Which papers a procedure needs, which of them are mandatory and which fields each
paper yields change with every new decision (regulations.md: "formats, templates
and retention periods are configuration"). They therefore live in
`catalogue.json`, checked against `catalogue.schema.json` when loaded, so a
technician can point the appliance at a replacement file without a release. A
file that fails the schema or refers to papers it does not define is refused
whole: half a catalogue would silently drop mandatory fields.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from appliance.records.errors import RecordsError

DEFAULT_PATH = Path(__file__).with_name("catalogue.json")
SCHEMA_PATH = Path(__file__).with_name("catalogue.schema.json")

# The paper type used when a page's title matches none: common fields, none mandatory.
FALLBACK_PAPER = "other"


class CatalogueError(RecordsError):
    """The catalogue file is missing, not JSON, or not valid against its schema.

    Keeps RecordsError's generic message key: the screens have no text of their own
    for it, and a technician reads the log line, which names the broken place."""


@dataclass(frozen=True)
class FieldSpec:
    """One field a paper yields: its kind picks the validator, labels find it on the page."""

    name: str
    kind: str
    labels: tuple[str, ...]
    mandatory: bool = False
    past: bool = False  # a date that cannot lie in the future (a date of birth)
    rows_below: int = 1  # rows under the label that may hold the value
    same_as: str = ""  # another field that must read the same
    upper_case: bool = True  # names: printed in upper case on this paper


@dataclass(frozen=True)
class PaperType:
    code: str
    name_vi: str
    name_en: str
    title_labels: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    form: str = ""

    def name(self, language: str) -> str:
        return self.name_vi if language == "vi" else self.name_en

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def mandatory_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.mandatory)


@dataclass(frozen=True)
class PaperRequirement:
    paper: str
    mandatory: bool
    note: str = ""


@dataclass(frozen=True)
class Procedure:
    code: str
    name_vi: str
    name_en: str
    papers: tuple[PaperRequirement, ...]
    one_of: tuple[tuple[str, ...], ...] = ()
    any_paper: bool = False

    def name(self, language: str) -> str:
        return self.name_vi if language == "vi" else self.name_en

    @property
    def mandatory_papers(self) -> tuple[str, ...]:
        return tuple(p.paper for p in self.papers if p.mandatory)

    def missing_papers(self, present: set[str] | frozenset[str]) -> list[str]:
        """Mandatory papers not among `present`, then each unmet one-of group as
        "a|b", so a dossier check can name exactly what the citizen still lacks."""
        missing = [p for p in self.mandatory_papers if p not in present]
        missing += ["|".join(group) for group in self.one_of
                    if not any(code in present for code in group)]
        return missing


@dataclass(frozen=True)
class Catalogue:
    version: int
    papers: tuple[PaperType, ...]
    procedures: tuple[Procedure, ...]
    cccd_provinces: dict[str, str]
    mobile_prefixes: frozenset[str]
    path: Path | None = None
    surnames: frozenset[str] = frozenset()  # upper case, NFC

    def paper(self, code: str) -> PaperType | None:
        return next((p for p in self.papers if p.code == code), None)

    def procedure(self, code: str) -> Procedure | None:
        return next((p for p in self.procedures if p.code == code), None)

    @property
    def fallback(self) -> PaperType:
        paper = self.paper(FALLBACK_PAPER)
        assert paper is not None  # load() refuses a catalogue without it
        return paper


@functools.cache
def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def validate(data: Any) -> None:
    """Raise CatalogueError naming the first place where `data` breaks the schema
    or refers to a paper it does not define."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top)"
        raise CatalogueError(f"catalogue invalid at {where}: {first.message}")
    codes = [p["code"] for p in data["papers"]]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise CatalogueError(f"paper types defined twice: {', '.join(dupes)}")
    if FALLBACK_PAPER not in codes:
        raise CatalogueError(f"no {FALLBACK_PAPER!r} paper type for unrecognised pages")
    procs = [p["code"] for p in data["procedures"]]
    dupes = sorted({c for c in procs if procs.count(c) > 1})
    if dupes:
        raise CatalogueError(f"procedures defined twice: {', '.join(dupes)}")
    for paper in data["papers"]:
        names = [f["name"] for f in paper["fields"]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise CatalogueError(f"paper {paper['code']}: fields defined twice: "
                                 f"{', '.join(twice)}")
        dangling = sorted({f["same_as"] for f in paper["fields"]
                           if f.get("same_as") and f["same_as"] not in names})
        if dangling:
            raise CatalogueError(f"paper {paper['code']}: same_as names unknown fields: "
                                 f"{', '.join(dangling)}")
    known = set(codes)
    for proc in data["procedures"]:
        refs = [r["paper"] for r in proc["papers"]]
        refs += [c for group in proc.get("one_of", []) for c in group]
        unknown = sorted(set(refs) - known)
        if unknown:
            raise CatalogueError(f"procedure {proc['code']} needs unknown paper types: "
                                 f"{', '.join(unknown)}")


def _build(data: dict[str, Any], path: Path | None) -> Catalogue:
    papers = tuple(
        PaperType(
            code=p["code"], name_vi=p["name_vi"], name_en=p["name_en"],
            title_labels=tuple(p["title_labels"]), form=p.get("form", ""),
            fields=tuple(FieldSpec(f["name"], f["kind"], tuple(f["labels"]),
                                   f.get("mandatory", False), f.get("past", False),
                                   f.get("rows_below", 1), f.get("same_as", ""),
                                   f.get("upper_case", True))
                         for f in p["fields"]),
        )
        for p in data["papers"]
    )
    procedures = tuple(
        Procedure(
            code=p["code"], name_vi=p["name_vi"], name_en=p["name_en"],
            papers=tuple(PaperRequirement(r["paper"], r["mandatory"], r.get("note", ""))
                         for r in p["papers"]),
            one_of=tuple(tuple(g) for g in p.get("one_of", [])),
            any_paper=p.get("any_paper", False),
        )
        for p in data["procedures"]
    )
    formats = data["formats"]
    surnames = frozenset(unicodedata.normalize("NFC", name).upper()
                         for name in formats.get("surnames", []))
    return Catalogue(data["version"], papers, procedures, dict(formats["cccd_provinces"]),
                     frozenset(formats["mobile_prefixes"]), path, surnames)


def from_data(data: Any) -> Catalogue:
    """A catalogue from already-parsed JSON (tests, or a file fetched by other means)."""
    validate(data)
    return _build(data, None)


def load(path: Path | str | None = None) -> Catalogue:
    """The catalogue at `path`, or the built-in one; validated before use."""
    if path is None:
        return default()
    return _load_file(Path(path))


def _load_file(path: Path) -> Catalogue:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as e:
        raise CatalogueError(f"cannot read catalogue {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise CatalogueError(f"catalogue {path} is not JSON: line {e.lineno}: {e.msg}") from e
    validate(data)
    return _build(data, path)


@functools.cache
def default() -> Catalogue:
    """The catalogue shipped with the appliance, loaded once per process."""
    return _load_file(DEFAULT_PATH)
