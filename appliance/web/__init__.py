"""The Flask application: kiosk (citizens), officer, technician screens and the JSON API.

`create_app` is the only entry point; configuration is passed in, never read from a
global, so tests and gunicorn workers each build their own app. The web only reads
and writes the database: scans are jobs the worker runs, because a kiosk request must
never block on (or crash with) the scanner.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from appliance.system.config import Config
from appliance.web import db, i18n

log = logging.getLogger(__name__)

SECRET_FILE = "web-secret-key"


def _secret_key(data_dir: str) -> bytes:
    """A session key kept on the device's data disk.

    Generated once and shared by every gunicorn worker and restart, so a citizen's
    session survives a worker being recycled; created with a link so two workers
    starting together agree on one key.
    """
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api"


def _register_error_pages(app: Flask) -> None:
    """Every error is a translated message: JSON under /api, a page elsewhere."""

    def respond(key: str, status: int) -> Any:
        if _wants_json():
            return jsonify({"error": key, "message": i18n.t(key)}), status
        return render_template("error.html", message=i18n.t(key), status=status), status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        code = e.code or 500
        key = {404: "error.not_found", 405: "error.method_not_allowed"}.get(
            code, "error.bad_request" if 400 <= code < 500 else "error.generic")
        return respond(key, code)

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return respond("error.generic", 500)


def create_app(config: Config | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    if config is None:
        from appliance.system.config import load

        config = load()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=_secret_key(config.paths.data_dir),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.config[db.CONFIG_KEY] = config
    if test_config:
        app.config.from_mapping(test_config)
    # Vietnamese names stay readable in JSON; field order stays as written.
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    db.init_app(app)
    i18n.init_app(app, i18n.Translations.load(), config.web.default_language)

    from appliance.web import api, kiosk, officer, staff, technician

    app.register_blueprint(api.bp)
    app.register_blueprint(kiosk.bp)
    app.register_blueprint(officer.bp)
    app.register_blueprint(technician.bp)
    app.register_blueprint(staff.bp)
    _register_error_pages(app)

    @app.get("/")
    def index() -> Response:
        return redirect(url_for("kiosk.start"))

    @app.context_processor
    def device_facts() -> dict[str, Any]:
        return {"agency_name": config.device.agency_name,
                "staff_lock": bool(staff.configured_pin())}

    @app.after_request
    def security_headers(response: Response) -> Response:
        # Everything is served from the device itself; nothing may be framed or fetched.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.path.startswith(("/static/", "/api/pages/", "/api/papers/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
