"""The web's live sessions (store/sessions.py): a session id stands from its start until
it is ended or MAX_AGE_SECONDS pass, and a start sweeps the ids that no longer stand.
The web's use of it (a cookie copied before reset, submit or logout opens nothing) is
tested through the screens in tests/web/test_redteam_privacy.py."""

from __future__ import annotations

from appliance.store import sessions
from appliance.store.db import connect


def test_a_session_stands_until_ended_or_too_old(tmp_path):
    conn = connect(tmp_path / "device.sqlite3")
    t = 1_800_000_000.0
    a = sessions.start(conn, at=t)
    b = sessions.start(conn, at=t)
    assert a != b and len(a) >= 32
    assert sessions.is_live(conn, a, at=t + 60) and sessions.is_live(conn, b, at=t + 60)
    sessions.end(conn, a)
    assert not sessions.is_live(conn, a, at=t + 60)
    assert sessions.is_live(conn, b, at=t + sessions.MAX_AGE_SECONDS)
    assert not sessions.is_live(conn, b, at=t + sessions.MAX_AGE_SECONDS + 1)
    for forged in (None, "", 5, "not-a-session", a.upper()):
        assert not sessions.is_live(conn, forged, at=t)
    sessions.start(conn, at=t + sessions.MAX_AGE_SECONDS + 1)  # sweeps b
    assert conn.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0] == 1
    sessions.end(conn, None)  # nothing to end: no error
    conn.close()
