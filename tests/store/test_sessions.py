"""The web's ended sessions (store/sessions.py): a session id stands from its start
until it is ended or MAX_AGE_SECONDS pass; starting one writes nothing (an officer can
sign in on a full disk), ending one lists it, and ending sweeps rows past the limit.
The web's use of it (a cookie copied before reset, submit or logout opens nothing) is
tested through the screens in tests/web/test_redteam_privacy.py."""

from __future__ import annotations

from appliance.store import sessions
from appliance.store.db import connect


def test_a_session_stands_until_ended_or_too_old(tmp_path):
    conn = connect(tmp_path / "device.sqlite3")
    t = 1_800_000_000.0
    a, b = sessions.start(at=t), sessions.start(at=t)
    assert a != b and a.startswith("1800000000.")
    assert conn.execute("SELECT COUNT(*) FROM ended_sessions").fetchone()[0] == 0
    assert sessions.is_live(conn, a, at=t + 60) and sessions.is_live(conn, b, at=t + 60)
    sessions.end(conn, a, at=t + 60)
    assert not sessions.is_live(conn, a, at=t + 61)
    assert sessions.is_live(conn, b, at=t + sessions.MAX_AGE_SECONDS)
    assert not sessions.is_live(conn, b, at=t + sessions.MAX_AGE_SECONDS + 1)
    token = b.partition(".")[2]
    for forged in (None, "", 5, "not-a-session", token, f"{int(t) + 3600}.{token}",
                   f"x{int(t)}.{token}", f"{int(t)}.short", f"-{int(t)}.{token}"):
        assert not sessions.is_live(conn, forged, at=t), forged
    sessions.end(conn, b, at=t + sessions.MAX_AGE_SECONDS + 120)  # sweeps a's row
    assert [r[0] for r in conn.execute("SELECT sid FROM ended_sessions")] == [b]
    sessions.end(conn, None)  # nothing to end: no error, nothing written
    sessions.end(conn, "garbage")
    assert conn.execute("SELECT COUNT(*) FROM ended_sessions").fetchone()[0] == 1
    conn.close()
