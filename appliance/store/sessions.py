"""The web's ended sessions: the server's half of a signed session cookie.

Why: Flask's session lives in a cookie the server signs but does not keep, so clearing
it (a citizen's reset or submit, an officer's logout) only asks the browser to drop
it: a copy taken before went on opening the dossier, or every citizen's data, and each
use of a staff session pushed its idle limit on. The cookie now also carries a session
id that names when it began; a session holds until its id is listed here as ended, and
never longer than MAX_AGE_SECONDS (a working day), however busy.

Why a list of ended sessions rather than of live ones: starting a session writes
nothing, so an officer can still sign in on a full disk to see the backlog and free
space. Ending one writes a row; on a full disk that write fails, the browser's cookie
is still emptied, and a copy taken before lapses at its age limit.
"""

from __future__ import annotations

import secrets
import sqlite3

from appliance.store.db import now
from appliance.system.sqlite import transaction

MAX_AGE_SECONDS = 12 * 3600


def start(*, at: float | None = None) -> str:
    """A new session's id: when it began, and 32 random bytes."""
    t = now() if at is None else at
    return f"{int(t)}.{secrets.token_urlsafe(32)}"


def _began(sid: object) -> int | None:
    if not isinstance(sid, str):
        return None
    began, _, token = sid.partition(".")
    if not began.isdigit() or len(began) > 12 or len(token) < 32:
        return None
    return int(began)


def is_live(conn: sqlite3.Connection, sid: object, *, at: float | None = None) -> bool:
    """Whether a cookie's session id still stands: well formed, younger than the
    limit, and not ended."""
    began = _began(sid)
    t = now() if at is None else at
    if began is None or not t - MAX_AGE_SECONDS <= began <= t + 60:
        return False
    return conn.execute("SELECT 1 FROM ended_sessions WHERE sid=?",
                        (sid,)).fetchone() is None


def end(conn: sqlite3.Connection, sid: object, *, at: float | None = None) -> None:
    """End a session: every copy of its cookie stops opening anything. Rows of sessions
    past the age limit go (those are refused by their age alone)."""
    if _began(sid) is None:
        return
    t = now() if at is None else at
    with transaction(conn):
        conn.execute("DELETE FROM ended_sessions WHERE ended_at < ?", (t - MAX_AGE_SECONDS,))
        conn.execute("INSERT OR IGNORE INTO ended_sessions(sid, ended_at) VALUES (?, ?)",
                     (sid, t))
