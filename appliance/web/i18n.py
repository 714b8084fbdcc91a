"""Every text a person reads on the appliance is a key looked up here.

Vietnamese is the language of the office and of the records, so it is the reference
table: a key missing in English falls back to Vietnamese, never to a raw key on a
citizen's screen. The language is chosen per request (``?lang=`` → cookie → default);
the API alone also honours Accept-Language, because a kiosk browser announces the
language of its build, not the one the citizen reads.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask, Response, current_app, g, request

log = logging.getLogger(__name__)

LANGUAGES: tuple[str, ...] = ("vi", "en")
REFERENCE = "vi"
COOKIE = "lang"
EXTENSION = "appliance.i18n"
TRANSLATIONS_DIR = Path(__file__).parent / "translations"

# Keys built at run time (from a job step or a device state) rather than written
# literally in a template; the translation test checks these exist too. Error keys are
# not listed here: `message_keys()` reads them from the layers that raise them.
JOB_STEP_KEYS: tuple[str, ...] = (
    "job.queued", "job.scanning", "job.reading", "job.assembling", "job.done",
    "job.worker_stalled",
)
STATE_KEYS: tuple[str, ...] = (
    "state.scanner.ready", "state.scanner.busy", "state.scanner.error",
    "state.scanner.unknown", "state.ocr.ready", "state.ocr.unavailable", "state.ocr.unknown",
    "state.sync.no_broker", "state.sync.connected", "state.sync.disconnected",
    "state.sync.acks_refused", "state.sync.unknown", "delivery.pending", "delivery.sending",
    "delivery.delivered", "delivery.none", "status.open", "status.submitted", "status.signed",
    "status.cancelled",
)
# Labels of the fields appliance.extraction produces; a field without a label shows its name.
FIELD_KEYS: tuple[str, ...] = (
    "field.full_name", "field.birth_date", "field.cccd", "field.bhxh_number", "field.phone",
)


def _keys_of(module: ModuleType) -> set[str]:
    """A layer's message keys: its MESSAGE_KEYS / ALL_KEYS tuples and the `key` of each
    of its error classes."""
    keys: set[str] = set()
    for name in ("MESSAGE_KEYS", "ALL_KEYS"):
        keys |= set(getattr(module, name, ()))
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, BaseException)
                and isinstance(getattr(value, "key", None), str)):
            keys.add(value.key)
    return keys


def message_keys() -> frozenset[str]:
    """Every message key a layer can hand to a face, read from the layers themselves.

    Each package of `appliance` that has an ``errors`` module declares its keys there
    (error classes with a `key`, or a MESSAGE_KEYS tuple); a new error in any layer is
    therefore a key the translation test demands at once, and no list here can drift.
    """
    import appliance

    keys: set[str] = set()
    for info in pkgutil.iter_modules(appliance.__path__):
        if not info.ispkg:
            continue
        name = f"appliance.{info.name}.errors"
        if importlib.util.find_spec(name) is not None:
            keys |= _keys_of(importlib.import_module(name))
    return frozenset(keys)


DYNAMIC_KEYS: tuple[str, ...] = JOB_STEP_KEYS + STATE_KEYS + FIELD_KEYS


class Translations:
    """The loaded tables; one instance per app, read-only after start."""

    def __init__(self, tables: dict[str, dict[str, str]]) -> None:
        if REFERENCE not in tables:
            raise ValueError(f"no {REFERENCE} translation table")
        self.tables = tables

    @classmethod
    def load(cls, folder: Path = TRANSLATIONS_DIR) -> Translations:
        tables = {}
        for lang in LANGUAGES:
            with open(folder / f"{lang}.json", encoding="utf-8") as fh:
                tables[lang] = json.load(fh)
        return cls(tables)

    def has(self, key: str) -> bool:
        return key in self.tables[REFERENCE]

    def text(self, lang: str, key: str, **params: Any) -> str:
        table = self.tables.get(lang, self.tables[REFERENCE])
        template = table.get(key) or self.tables[REFERENCE].get(key)
        if template is None:
            # A key the tables lack is a bug; show the generic message, not the key.
            log.warning("missing translation key %s", key)
            template = table.get("error.generic") or self.tables[REFERENCE].get(
                "error.generic", key)
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError):
            log.warning("translation %s/%s needs parameters it was not given", lang, key)
            return template


def _choose(default: str) -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    if request.path.startswith("/api/") and request.headers.get("Accept-Language"):
        best = request.accept_languages.best_match(LANGUAGES)
        if best:
            return best
    return default


def init_app(app: Flask, translations: Translations, default_language: str) -> None:
    app.extensions[EXTENSION] = translations

    @app.before_request
    def pick_language() -> None:
        g.lang = _choose(default_language)

    @app.after_request
    def remember_language(response: Response) -> Response:
        asked = request.args.get("lang")
        if asked in LANGUAGES and not request.path.startswith("/api/"):
            response.set_cookie(COOKIE, asked, samesite="Strict", httponly=True,
                                secure=request.is_secure)
        return response

    @app.context_processor
    def template_helpers() -> dict[str, Any]:
        return {"t": t, "t_or": t_or, "lang": current_language(), "languages": LANGUAGES}


def current_language() -> str:
    return str(g.get("lang", REFERENCE))


def t(key: str, **params: Any) -> str:
    """Translate into the current request's language."""
    translations: Translations = current_app.extensions[EXTENSION]
    return translations.text(current_language(), key, **params)


def t_or(key: str, fallback: str, **params: Any) -> str:
    """Translate a key that may legitimately be absent (a new extracted field's label)."""
    translations: Translations = current_app.extensions[EXTENSION]
    if not translations.has(key):
        return fallback
    return translations.text(current_language(), key, **params)
