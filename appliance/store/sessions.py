"""The web's live sessions: the server's half of a signed session cookie.

Why: Flask's session lives in a cookie the server signs but does not keep, so clearing
it (a citizen's reset or submit, an officer's logout) only asks the browser to drop
it: a copy taken before went on opening the dossier, or every citizen's data, and each
use of a staff session pushed its idle limit on. The cookie now also carries a random
session id, and the session holds only while that id is listed here. Ending a session
deletes its id, which ends every copy. A session also ends MAX_AGE_SECONDS after it
began, however busy (a working day), and its row is then swept at the next start.
"""

from __future__ import annotations

import secrets
import sqlite3

from appliance.store.db import now
from appliance.system.sqlite import transaction

MAX_AGE_SECONDS = 12 * 3600


def start(conn: sqlite3.Connection, *, at: float | None = None) -> str:
    """A new session's id (listed until `end` or MAX_AGE_SECONDS); ended ones are swept."""
    t = now() if at is None else at
    sid = secrets.token_urlsafe(24)
    with transaction(conn):
        conn.execute("DELETE FROM web_sessions WHERE started_at < ?", (t - MAX_AGE_SECONDS,))
        conn.execute("INSERT INTO web_sessions(sid, started_at) VALUES (?, ?)", (sid, t))
    return sid


def is_live(conn: sqlite3.Connection, sid: object, *, at: float | None = None) -> bool:
    """Whether a cookie's session id still stands: listed, and younger than the limit."""
    if not isinstance(sid, str) or not sid:
        return False
    t = now() if at is None else at
    row = conn.execute("SELECT started_at FROM web_sessions WHERE sid=?", (sid,)).fetchone()
    return row is not None and row[0] >= t - MAX_AGE_SECONDS


def end(conn: sqlite3.Connection, sid: object) -> None:
    """End a session: every copy of its cookie stops opening anything."""
    if isinstance(sid, str) and sid:
        with transaction(conn):
            conn.execute("DELETE FROM web_sessions WHERE sid=?", (sid,))
