"""Per-request access to the database, the file store and the configuration.

A connection lives for one request only (opened on first use, closed at teardown):
gunicorn's threads must never share one, and the worker and sync processes write
the same file, so a long-held connection would only hold stale read snapshots.
"""

from __future__ import annotations

import sqlite3

from flask import Flask, current_app, g

from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.system.config import Config

CONFIG_KEY = "APPLIANCE"


def get_config() -> Config:
    return current_app.config[CONFIG_KEY]


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect(get_config().paths.database, migrate=False)
    return g.db


def get_files() -> FileStore:
    return FileStore(get_config().paths.files)


def close_db(exc: BaseException | None = None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    # Migrate once per process before the first request, so requests open cheaply.
    connect(app.config[CONFIG_KEY].paths.database, migrate=True).close()
    app.teardown_appcontext(close_db)
