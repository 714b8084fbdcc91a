"""/technician: what a field technician needs to judge and repair the device.

Raw figures sit next to their meaning: "no broker" is not a fault on a device not yet
connected to the central office, and the screen says that records wait safely. Every
route needs the technician role (one guard per blueprint): the screen under
/technician, and the JSON it polls and posts to under /api/technician (described in
the OpenAPI document like every /api route).

What the panel does, and who really does it:
- choose the scanner and run a test scan: jobs for the worker (`store.jobs.JobKind`),
  because only the worker opens the scanner; the panel polls the job for its timed
  steps and shows the first page's thumbnail. The choice is remembered by the
  scanner's stable identity (`store.state.choose_scanner`), which the worker opens.
- test the broker: `sync.probe`, one connection with the configured TLS files;
- `appliance doctor`'s verdicts (`system.doctor.local_checks`): the same records the
  command prints and sync's status heartbeat carries; only the local, quick checks run
  in the request, the scanner, broker, database and models lines are the last
  `appliance doctor` round's, with its time (the web never opens the scanner);
- models and their sha256 (`ocr.manifest`), versions, the journal of the appliance's
  units (`journalctl`, a clear message where there is no journal), the outbox and the
  dead letters (`store.outbox.inspect`), and the configuration file as it is on disk
  now, checked key by key (`system.config.problems`), so a technician who edited it
  sees every bad key before restarting anything.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import importlib.metadata
import json
import os
import platform
import shutil
import string
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask_wtf.csrf import generate_csrf

from appliance import status
from appliance.ocr.errors import OcrError
from appliance.ocr.manifest import Manifest, default_models_dir, sha256_file
from appliance.store import jobs, outbox, state
from appliance.store.db import aad, open_text
from appliance.store.errors import StoreError
from appliance.store.jobs import JobKind, JobState
from appliance.sync import probe
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.web import api, auth, i18n, presenters, usecases
from appliance.web.db import get_config, get_db
from appliance.web.errors import WebError, register_api, register_html
from appliance.web.i18n import t, t_or

bp = Blueprint("technician", __name__, url_prefix="/technician")
bp.before_request(auth.guard_technician)
# The panel's JSON: under /api (programs send X-Technician-PIN without a CSRF token,
# as with every /api route), refused with a problem document.
api_bp = Blueprint("technician_api", __name__, url_prefix="/api/technician")

JOURNAL_UNITS = "appliance-*"
JOURNAL_LINES = 60
JOURNAL_MAX_LINES = 500
JOURNAL_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 5.0
# What journalctl says where no systemd journal exists (a container, a test machine).
NO_JOURNAL = ("No journal files", "No data available")
SOURCES = ("flatbed", "adf", "duplex")  # scanner.settings.Source, by value
TECH_KINDS = (JobKind.SCANNER_LIST, JobKind.SCANNER_TEST)


def _api_guard() -> None:
    """before_request of /api/technician: anyone but a technician gets a 403 problem."""
    if not auth.is_technician():
        raise WebError("error.technician_only", 403)


api_bp.before_request(_api_guard)
register_api(api_bp)


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
    return t("tech.unknown") if n is None else presenters.size(n)


def _scanner(value: str) -> str:
    if value.startswith("error:"):
        return t("state.scanner.error", detail=t(value.split(":", 1)[1]))
    if value in ("ready", "busy"):
        return t(f"state.scanner.{value}")
    return t("state.scanner.unknown")


def status_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures in the order that stops citizens first (scanner, scan service, disk,
    backlog), so on a 7" 800x480 screen they are on the first screen."""
    sync = s["sync_state"] if s["sync_state"] in frozenset(state.SyncState) else "unknown"
    ocr = s["ocr_state"] if s["ocr_state"] in ("ready", "unavailable") else "unknown"
    last = s["last_delivery_at"]
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
    return rows


@bp.get("/")
@bp.get("")  # registered first, so links use the form without a slash
def index() -> str:
    config = get_config()
    conn = get_db()
    s = status.snapshot(conn, config)
    return render_template("technician/index.html", rows=status_rows(s), raw=s,
                           device=config.device, models=status.model_summary(),
                           versions=_versions(), settings=_settings(),
                           config_file=str(_config_path()), problems=_problems(),
                           chosen=state.chosen_scanner(conn),
                           chosen_label=identity_label(state.chosen_scanner(conn)),
                           configured_device=config.scanner.device,
                           broker=f"{config.mqtt.host}:{config.mqtt.port}"
                           if config.mqtt.host else "",
                           queue=_queue(), journal=journal_tail(JOURNAL_LINES),
                           sources=SOURCES, csrf=generate_csrf(),
                           idle_seconds=auth.ROLE_SESSION_SECONDS // 3,
                           agency_name=config.device.agency_name,
                           doctor=doctor_rows(config))


DOCTOR_NAMES = ("config", "disk", "database", "key", "queue", "clock", "certificate",
                "central_key", "broker", "scanner", "models", "schema", "units")


def doctor_text(message: doctor.Message | None, english: str) -> tuple[str, str]:
    """A check's summary or next step in the session's language, and that language.

    The command's English text when the check carries no message (a report saved by an
    older release, a check from a layer without keys) or one this build cannot fill (a
    key it lacks, an argument it is not given): never a blank cell, a raw key or a
    "{placeholder}". An argument named ``*_key`` is a message key itself (the scanner's
    fault, its state), translated here and given without the suffix (doctor.Message).
    """
    translations: i18n.Translations = current_app.extensions[i18n.EXTENSION]
    if message is None or not translations.has(message.key):
        return english, "en"
    args: dict[str, Any] = {}
    for name, value in message.args.items():
        if name.endswith("_key"):
            args[name.removesuffix("_key")] = t_or(str(value), str(value))
        else:
            args[name] = value
    needed = {field for _, field, _, _ in
              string.Formatter().parse(translations.tables[i18n.REFERENCE][message.key])
              if field}
    if not needed <= set(args):
        return english, "en"
    return t(message.key, **args), i18n.current_language()


def doctor_rows(config: config_mod.Config) -> dict[str, Any]:
    """`appliance doctor`'s checks for the screen: a translated name, verdict, summary
    and next step (commands, paths and figures as the command prints them), with the
    command's own English beside them (`summary_en`, `next_step_en`) to match a line
    of `appliance doctor`'s output or the journal."""
    checks = doctor.local_checks(config, _config_path().parent / doctor.PROVISION_CERT)
    rows = []
    for c in checks:
        if c.name in DOCTOR_NAMES:
            label = t(f"tech.doctor.check.{c.name}")
        elif c.name.startswith("unit "):
            label = t("tech.doctor.check.unit", unit=c.name.removeprefix("unit "))
        else:
            label = c.name
        as_of = (time.strftime("%Y-%m-%d %H:%M", time.localtime(c.as_of))
                 if c.as_of is not None else "")
        summary, summary_lang = doctor_text(c.summary_msg, c.summary)
        shows_next = c.verdict is not doctor.Verdict.OK and bool(c.next_step or c.next_msg)
        next_step, next_lang = (doctor_text(c.next_msg, c.next_step) if shows_next
                                else ("", i18n.current_language()))
        rows.append({"name": c.name, "label": label, "verdict": c.verdict.value,
                     "verdict_text": t(f"tech.doctor.verdict.{c.verdict.value}"),
                     "summary": summary, "summary_lang": summary_lang,
                     "summary_en": c.summary,
                     "next_step": next_step, "next_step_lang": next_lang,
                     "next_step_en": c.next_step if shows_next else "",
                     "as_of": as_of,
                     "as_of_text": t("tech.doctor_as_of", time=as_of) if as_of else ""})
    overall = doctor.worst(checks).value
    return {"verdict": overall, "verdict_text": t(f"tech.doctor.verdict.{overall}"),
            "rows": rows}


@api_bp.get("/doctor")
def doctor_view() -> Response:
    """The panel's doctor table, polled with the status figures."""
    return jsonify(doctor_rows(get_config()))


# --- versions and configuration ------------------------------------------------------
SECRET_WORDS = ("pin", "password", "secret", "passphrase")
PACKAGES = ("appliance", "flask", "gunicorn", "onnxruntime", "pillow", "paho-mqtt",
            "python-sane")


def _versions() -> list[tuple[str, str]]:
    """What runs here, read from the installed metadata (nothing is imported for it),
    and the SANE backends the worker loads (its dll.conf: a file, not the scanner)."""
    out = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, t("tech.unknown")))
    out.append(("SANE backends", ", ".join(sane_backends(get_config())) or t("tech.unknown")))
    return out


def sane_backends(config: config_mod.Config) -> list[str]:
    folder = Path(config.scanner.sane_config_dir or "/etc/sane.d")
    try:
        text = (folder / "dll.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


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


def identity_label(identity: str) -> str:
    """`scanner:vendor=…&model=…&serial=…` as a person reads it ("eSCL BHXH Demo
    Scanner, serial X"); read here without the scanner package, which the web must not
    import."""
    if not identity.startswith("scanner:"):
        return identity
    fields = dict(parse_qsl(identity[len("scanner:"):]))
    label = " ".join(p for p in (fields.get("vendor", ""), fields.get("model", "")) if p)
    return label + (f" ({fields['serial']})" if fields.get("serial") else "")


def _config_path() -> Path:
    explicit = os.environ.get(config_mod.CONFIG_ENV)
    return Path(explicit) if explicit else config_mod.DEFAULT_CONFIG_PATH


def _problems() -> list[dict[str, str]]:
    """The file on disk now, checked key by key (the service runs with what it loaded
    at start, which was valid: a later edit shows here before any restart)."""
    path = _config_path()
    if not path.exists() and not os.environ.get(config_mod.CONFIG_ENV):
        return []  # built-in defaults: nothing to check
    return [{"key": key, "message": message} for key, message in config_mod.problems(path)]


@api_bp.get("/config")
def config_view() -> Response:
    return jsonify({"file": str(_config_path()), "problems": _problems(),
                    "settings": [{"section": s, "values": dict(v)} for s, v in _settings()]})


@api_bp.get("/versions")
def versions() -> Response:
    return jsonify(dict(_versions()))


# --- status, queue --------------------------------------------------------------------
@api_bp.get("/status")
def status_view() -> Response:
    s = status.snapshot(get_db(), get_config())
    return jsonify({"rows": [{"key": k, "label": t(k), "value": v}
                             for k, v in status_rows(s)], "raw": s})


def _queue() -> dict[str, Any]:
    conn = get_db()
    now = time.time()
    stats = outbox.stats(conn, now=now)
    found = outbox.inspect(conn)
    for row in found["waiting"]:
        row["age"] = _age(now - row["created_at"])
    for row in found["dead_letters"]:
        row["age"] = _age(now - row["at"])
    return {"counts": {"pending": stats["pending"], "sending": stats["sending"],
                       "delivered": stats["delivered_count"]},
            "oldest_age_s": stats["oldest_undelivered_age_seconds"],
            "dead_letter_counts": outbox.dead_letter_counts(conn), **found}


@api_bp.get("/queue")
def queue_view() -> Response:
    return jsonify(_queue())


# --- journal --------------------------------------------------------------------------
def journal_tail(lines: int) -> dict[str, Any]:
    """The last lines of the appliance's units, newest last, or why there are none
    (no journalctl, no journal here, no permission): a message, never an error page."""
    exe = shutil.which("journalctl")
    if exe is None:
        return {"available": False, "entries": [], "message": t("tech.journal_missing")}
    try:
        out = subprocess.run([exe, "--unit", JOURNAL_UNITS, "--output", "json",
                              "--lines", str(lines), "--no-pager", "--quiet"],
                             capture_output=True, timeout=JOURNAL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"available": False, "entries": [],
                "message": t("tech.journal_failed", detail=str(e))}
    entries = [_entry(line) for line in out.stdout.splitlines() if line.strip()]
    entries = [e for e in entries if e is not None]
    detail = out.stderr.decode("utf-8", "replace").strip()[:300]
    if not entries and any(words in detail for words in NO_JOURNAL):
        return {"available": False, "entries": [], "message": t("tech.journal_empty")}
    if out.returncode != 0 and not entries:
        return {"available": False, "entries": [],
                "message": t("tech.journal_failed", detail=detail or out.returncode)}
    if not entries:
        return {"available": True, "entries": [], "message": t("tech.journal_empty")}
    return {"available": True, "entries": entries, "message": ""}


def _entry(line: bytes) -> dict[str, Any] | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    message = raw.get("MESSAGE", "")
    if isinstance(message, list):  # journald gives non-UTF-8 messages as bytes
        message = bytes(message).decode("utf-8", "replace")
    try:
        at = int(raw.get("__REALTIME_TIMESTAMP", "0")) / 1e6
    except ValueError:
        at = 0.0
    try:
        priority = int(raw.get("PRIORITY", 6))
    except ValueError:
        priority = 6
    return {"at": at, "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)),
            "unit": raw.get("_SYSTEMD_UNIT", ""), "priority": priority,
            "message": str(message)}


@api_bp.get("/journal")
def journal_view() -> Response:
    try:
        lines = int(request.args.get("lines", JOURNAL_LINES))
    except ValueError:
        raise WebError("error.bad_request", 400) from None
    if not 1 <= lines <= JOURNAL_MAX_LINES:
        raise WebError("error.bad_request", 400)
    return jsonify(journal_tail(lines))


# --- models ---------------------------------------------------------------------------
def models_checked(verify: bool) -> list[dict[str, Any]]:
    """The manifest's models; with `verify`, each file hashed now against its sha256."""
    try:
        manifest = Manifest.load(default_models_dir())
    except OcrError:
        return []
    out = []
    for entry in manifest.entries:
        path = entry.path(manifest.models_dir)
        row: dict[str, Any] = {"name": entry.name, "role": entry.role,
                               "variant": entry.variant, "file": entry.file,
                               "sha256": entry.sha256, "check": "not_checked"}
        if verify:
            if not path.is_file():
                row["check"] = "missing"
            else:
                actual = sha256_file(path)
                row["actual_sha256"] = actual
                row["check"] = "ok" if actual == entry.sha256 else "mismatch"
        row["check_text"] = t(f"tech.model_{row['check']}")
        out.append(row)
    return out


@api_bp.get("/models")
def models_view() -> Response:
    verify = request.args.get("verify", "false")
    if verify not in ("true", "false"):
        raise WebError("error.bad_request", 400)
    return jsonify(models_checked(verify == "true"))


# --- broker ---------------------------------------------------------------------------
@api_bp.post("/broker/test")
def broker_test() -> Response:
    """One connection with the configured broker, TLS files and a probe client id."""
    config = get_config()
    found = probe.probe(config.mqtt, f"{config.device.id}-probe", timeout=PROBE_TIMEOUT_S)
    return jsonify({**found.to_dict(), "ms": round(found.seconds * 1000, 1),
                    "message": t(found.key, host=found.host, port=found.port,
                                 ms=round(found.seconds * 1000, 1))})


# --- scanner: jobs for the worker -----------------------------------------------------
def _body() -> dict[str, Any]:
    return api.optional_json_body()


def _enqueue(kind: JobKind, params: dict[str, Any]) -> int:
    """One technician job at a time: each one holds the scanner, and citizens' scans
    queue behind it."""
    conn = get_db()
    if jobs.active_of_kind(conn, TECH_KINDS) is not None:
        raise WebError("tech.job_active", 409)
    return jobs.enqueue(conn, kind, None, params)


def _tech_job(job_id: int) -> jobs.Job:
    job = jobs.get(get_db(), job_id)
    if job is None or job.kind not in TECH_KINDS:
        raise WebError("error.job_not_found", 404)
    return job


def _job_json(job: jobs.Job) -> dict[str, Any]:
    progress = dict(job.progress)
    has_thumb = bool(progress.pop(jobs.TEST_THUMBNAIL, None))
    steps = progress.pop("steps", [])
    for step in steps:
        if "error" in step:
            step["error_text"] = t(step["error"])
    active = job.state in (JobState.QUEUED, JobState.RUNNING)
    return {
        "id": job.id, "kind": job.kind, "state": job.state,
        "steps": steps, "result": progress,
        "thumbnail_url": url_for("technician_api.job_thumbnail", job_id=job.id)
        if has_thumb else None,
        "error_key": job.error_key,
        "message": t(job.error_key) if job.error_key else (
            t("tech.job_waiting") if active else t("tech.job_done")),
        "stalled": active and usecases.worker_stalled(get_db()),
    }


@api_bp.post("/scanners/search")
def search_scanners() -> tuple[Response, int]:
    """Ask the worker for every scanner SANE finds (with their identities)."""
    _body()
    job_id = _enqueue(JobKind.SCANNER_LIST, {})
    return jsonify({"job_id": job_id}), 202


@api_bp.post("/scanners/test")
def test_scanner() -> tuple[Response, int]:
    """Ask the worker for a test scan: open, capabilities, one batch, close, timed."""
    body = _body()
    device = body.get("device", "")
    source = body.get("source", "flatbed")
    if not isinstance(device, str) or len(device) > 500:
        raise WebError("error.bad_request", 400)
    if source not in SOURCES:
        raise WebError("error.bad_source", 400)
    job_id = _enqueue(JobKind.SCANNER_TEST, {"device": device, "source": source})
    return jsonify({"job_id": job_id}), 202


@api_bp.post("/scanners/choose")
def choose_scanner() -> Response:
    """Remember the scanner the worker opens from now on, by its stable identity
    (`scanner:vendor=…&model=…`, as the scanner list gives it); '' forgets it."""
    body = _body()
    identity = body.get("identity")
    if not isinstance(identity, str) or len(identity) > 500 or (
            identity and not identity.startswith("scanner:")):
        raise WebError("error.bad_request", 400)
    state.choose_scanner(get_db(), identity)
    return jsonify({"chosen": identity, "label": identity_label(identity)})


@api_bp.get("/jobs/<int:job_id>")
def job_view(job_id: int) -> Response:
    return jsonify(_job_json(_tech_job(job_id)))


@api_bp.get("/jobs/<int:job_id>/thumbnail")
def job_thumbnail(job_id: int) -> Response:
    sealed = _tech_job(job_id).progress.get(jobs.TEST_THUMBNAIL)
    if not isinstance(sealed, str):
        raise WebError("error.file_missing", 404)  # none yet, or a later test dropped it
    try:
        encoded = open_text(get_db(), sealed, aad("jobs", jobs.TEST_THUMBNAIL, job_id))
        data = base64.b64decode(encoded, validate=True)
    except (StoreError, binascii.Error, ValueError):
        raise WebError("error.file_missing", 404) from None
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store"
    return response
