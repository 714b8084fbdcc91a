"""/technician: what a field technician needs to judge the device at a glance.

Raw figures sit next to their meaning: "no broker" is not a fault on a device not yet
connected to the central office, and the screen says that records wait safely. Every
route needs the technician role (one guard).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import time
from typing import Any

from flask import Blueprint, render_template, request, url_for

from appliance import status
from appliance.web import auth
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError, register_html
from appliance.web.i18n import t

bp = Blueprint("technician", __name__, url_prefix="/technician")
bp.before_request(auth.guard_technician)


def _back_to(error: WebError) -> str | None:
    if error.status == 401:
        return url_for("staff.login", next=request.full_path.rstrip("?"))
    return None


register_html(bp, _back_to)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return t("tech.never")
    s = int(seconds)
    if s < 120:
        return t("tech.seconds", n=s)
    if s < 7200:
        return t("tech.minutes", n=s // 60)
    if s < 172800:
        return t("tech.hours", n=s // 3600)
    return t("tech.days", n=s // 86400)


def _bytes(n: int | None) -> str:
    if n is None:
        return t("tech.unknown")
    gib = n / 1024**3
    return f"{gib:.1f} GiB" if gib >= 1 else f"{n / 1024**2:.0f} MiB"


def _scanner(state: str) -> str:
    if state.startswith("error:"):
        return t("state.scanner.error", detail=t(state.split(":", 1)[1]))
    if state in ("ready", "busy"):
        return t(f"state.scanner.{state}")
    return t("state.scanner.unknown")


@bp.get("/")
@bp.get("")  # registered first, so links use the form without a slash
def index() -> str:
    s = status.snapshot(get_db(), get_config())
    sync = s["sync_state"] if s["sync_state"] in ("no_broker", "connected",
                                                   "disconnected") else "unknown"
    ocr = s["ocr_state"] if s["ocr_state"] in ("ready", "unavailable") else "unknown"
    last = s["last_delivery_at"]
    # What stops the citizens first (scanner, scan service, disk, backlog), so that on a
    # 7" 800x480 screen it is on the first screen without scrolling.
    rows = [
        ("tech.scanner", _scanner(s["scanner_state"])),
        ("tech.heartbeat", _age(s["worker_heartbeat_age_s"])),
        ("tech.disk_free", _bytes(s["disk_free_bytes"])),
        ("tech.depth", str(s["queue_depth"])),
        ("tech.oldest", _age(s["oldest_undelivered_age_s"]) if s["queue_depth"]
         else t("tech.none_waiting")),
        ("tech.sync", t(f"state.sync.{sync}")),
        ("tech.last_delivery", _age(time.time() - last) if last else t("tech.never")),
        ("tech.delivered", str(s["delivered"])),
        ("tech.dead_letters", str(s["sync_dead_letters"])),
        ("tech.ocr", t(f"state.ocr.{ocr}")),
    ]
    if s["sync_last_error"]:
        rows.append(("tech.sync_error", s["sync_last_error"]))
    return render_template("technician/index.html", rows=rows, raw=s,
                           device=get_config().device, models=status.model_summary(),
                           versions=_versions(), settings=_settings(),
                           agency_name=get_config().device.agency_name)


SECRET_WORDS = ("pin", "password", "secret", "passphrase")
PACKAGES = ("appliance", "flask", "gunicorn", "onnxruntime", "pillow", "paho-mqtt")


def _versions() -> list[tuple[str, str]]:
    """What runs here, read from the installed metadata (nothing is imported for it)."""
    out = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, t("tech.unknown")))
    return out


def _settings() -> list[tuple[str, list[tuple[str, str]]]]:
    """The configuration in effect, by section; PINs and passwords only say whether
    they are set, so the screen can be shown to anyone standing by."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for section, values in dataclasses.asdict(get_config()).items():
        if not isinstance(values, dict):
            sections.append(("", [(section, str(values))]))
            continue
        items: list[tuple[str, str]] = []
        for key, value in values.items():
            shown: Any = value
            if any(word in key.lower() for word in SECRET_WORDS):
                shown = t("tech.secret_set") if value else t("tech.secret_empty")
            items.append((key, str(shown)))
        sections.append((section, items))
    return sections
