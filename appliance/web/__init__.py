"""The Flask application: kiosk (citizens), officer, technician screens and the JSON API.

`create_app` is the only entry point; configuration is passed in, never read from a
global, so tests and gunicorn workers each build their own app. The web only reads
and writes the database: scans are jobs the worker runs, because a kiosk request must
never block on (or crash with) the scanner.

How the files divide the work:
- `kiosk`, `officer`, `technician`, `staff`, `api`: one blueprint per face; views only
  read the request, call a use case, and render or serialise the answer.
- `auth`: the roles and the one guard per blueprint; `security`: origin and CSRF checks
  and the response headers; `limits`: flood limits and the PIN lockout (never a sleep).
- `usecases`: what a face *does* (open, scan, submit, cancel, sign), the same for the
  screens and the API; `presenters`: how a dossier or job looks to them.
- `errors`: the one failure path of each face; `i18n`: the texts; SQL lives in
  `appliance.records.queries`, never here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, redirect, request, url_for
from werkzeug.routing import IntegerConverter, Map

from appliance.records.queries import MAX_ROW_ID
from appliance.system.config import Config
from appliance.web import auth, db, errors, i18n, loaders, security, usecases

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
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another worker won the race
                os.link(tmp, path)
        except OSError as e:
            # A first start on a full (or read-only) data disk: the screens must still
            # come up to say so. A key of this process alone keeps sessions working
            # within it; the file is written at the next start with space.
            log.error("cannot write the web session key %s (%s); using a key for this "
                      "process only until the disk has space", path, e)
            return secrets.token_bytes(32)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: an id a SQLite rowid can hold, else no match (404).

    Without the bound, an id of 2^63 or more reaches the driver, which raises
    OverflowError: a 500 instead of "not found".
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


def create_app(config: Config | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    if config is None:
        from appliance.system.config import load

        config = load()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=_secret_key(config.paths.data_dir),
        # Strict: no other site's page, link or form ever travels with our session.
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=True,
        # A session cookie older than this is refused even with a good signature.
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024,
        # CSRF is checked by security.protect_state_changes, not on every view blindly.
        WTF_CSRF_CHECK_DEFAULT=False,
    )
    app.config[db.CONFIG_KEY] = config
    if test_config:
        app.config.from_mapping(test_config)
    # Vietnamese names stay readable in JSON; field order stays as written.
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.url_map.converters["int"] = RowIdConverter
    app.url_map.converters["public_id"] = loaders.PublicIdConverter  # dossiers (issue 8)

    db.init_app(app)
    i18n.init_app(app, i18n.Translations.load(), config.web.default_language)
    auth.init_app(app)
    usecases.init_app(app, config)
    security.init_app(app)

    from appliance.web import api, kiosk, officer, staff, technician

    app.register_blueprint(api.bp)
    app.register_blueprint(kiosk.bp)
    app.register_blueprint(officer.bp)
    app.register_blueprint(technician.bp)
    app.register_blueprint(technician.api_bp)  # /api/technician: the panel's JSON
    app.register_blueprint(staff.bp)
    errors.register_app(app)

    if not (config.web.officer_pin or app.config.get("OFFICER_PIN")) and not _loopback(
            config.web.bind):
        log.warning("web: no officer PIN configured while listening on %s: staff screens "
                    "and the staff API are open to the network", config.web.bind)

    @app.get("/")
    def index() -> Response:
        return redirect(url_for("kiosk.start"))

    @app.context_processor
    def device_facts() -> dict[str, Any]:
        return {"agency_name": config.device.agency_name,
                "staff_lock": bool(auth.officer_pin() or auth.technician_pin()),
                # The kiosk's high-contrast look, chosen by the person at the screen.
                "high_contrast": request.cookies.get("contrast") == "1"}

    @app.before_request
    def citizen_alive() -> None:
        dossier_id = auth.citizen_dossier()
        if dossier_id is not None:
            usecases.touch(dossier_id)

    return app


def _loopback(bind: str) -> bool:
    host = bind.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
