"""Per-request access to the database, the file store and the configuration.

A connection lives for one request only (opened on first use, closed at teardown):
gunicorn's threads must never share one, and the worker and sync processes write
the same file, so a long-held connection would only hold stale read snapshots.
"""

from __future__ import annotations

import sqlite3

from flask import Flask, current_app, g

from appliance.store.db import connect, sealer_of
from appliance.store.files import FileStore
from appliance.system.config import Config

CONFIG_KEY = "APPLIANCE"


def get_config() -> Config:
    return current_app.config[CONFIG_KEY]


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect(get_config().paths.database, migrate=False,
                       key_file=get_config().paths.key_file)
    return g.db


def get_files() -> FileStore:
    # The key the connection checked against the database (store/db.py), so files and
    # rows are never sealed under two different keys.
    return FileStore(get_config().paths.files, sealer=sealer_of(get_db()))


def close_db(exc: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    # Migrate once per process before the first request, so requests open cheaply.
    # A missing or wrong encryption key stops the web here, at start (exit 2).
    paths = app.config[CONFIG_KEY].paths
    connect(paths.database, migrate=True, key_file=paths.key_file).close()
    app.teardown_appcontext(close_db)
