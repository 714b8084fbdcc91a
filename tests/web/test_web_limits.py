"""Floods: dossier creation, scans and PINs degrade only the flooder, and the day's
dossier codes cannot be used up by anonymous requests."""

from __future__ import annotations

import pytest

from appliance.records import dossiers
from appliance.store import jobs
from appliance.web import create_app
from appliance.web.limits import Backoff, TokenBucket
from tests.web.forms import AGREE, post_form


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count(conn, sql: str = "SELECT COUNT(*) FROM dossiers") -> int:
    return conn.execute(sql).fetchone()[0]


def program(app, address: str):
    c = app.test_client(use_cookies=False)
    c.environ_base["REMOTE_ADDR"] = address
    return c


def browser(app, address: str = "127.0.0.1"):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def test_token_bucket_refills_and_says_how_long_to_wait():
    clock = Clock()
    bucket = TokenBucket(burst=2, every=10, clock=clock)
    assert [bucket.take("a"), bucket.take("a")] == [0, 0]
    assert bucket.take("a") == pytest.approx(10)
    assert bucket.take("b") == 0  # another key is not affected
    clock.now += 5
    assert bucket.take("a") == pytest.approx(5)
    clock.now += 5
    assert bucket.take("a") == 0


def test_token_bucket_memory_is_bounded():
    bucket = TokenBucket(burst=1, every=1, clock=Clock(), max_keys=100)
    for n in range(1000):
        bucket.take(f"k{n}")
    assert len(bucket._buckets) <= 100


def test_backoff_locks_after_the_free_tries_and_doubles():
    clock = Clock()
    b = Backoff(free=3, base=30, cap=100, clock=clock)
    for _ in range(2):
        b.fail("x")
        assert b.wait("x") == 0
    b.fail("x")
    assert b.wait("x") == 30
    b.fail("x")
    assert b.wait("x") == 60
    b.fail("x")
    assert b.wait("x") == 100  # capped
    b.succeed("x")
    assert b.wait("x") == 0


def test_creation_flood_from_one_client_degrades_only_that_client(app, conn):
    flooder = program(app, "10.0.0.66")
    codes = [flooder.post("/api/dossiers", json={"procedure": "khac"}).status_code
             for _ in range(200)]
    created = codes.count(201)
    assert created <= 5 and set(codes) == {201, 429}
    r = flooder.post("/api/dossiers", json={"procedure": "khac"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert count(conn) == created
    # a citizen at the kiosk and another client are not affected
    kiosk = browser(app)
    r = post_form(kiosk, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE})
    assert r.status_code == 302 and r.headers["Location"].endswith("/kiosk/dossier")
    assert program(app, "10.0.0.7").post("/api/dossiers",
                                         json={"procedure": "khac"}).status_code == 201


def test_one_open_dossier_per_kiosk_session(client, conn):
    """Tapping the same procedure again keeps the dossier (and its code)."""
    for _ in range(10):
        post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE})
    assert count(conn) == 1
    post_form(client, "/kiosk/dossiers", {"procedure": "khac", **AGREE})  # changed their mind
    assert count(conn) == 2
    assert count(conn, "SELECT COUNT(*) FROM dossiers WHERE status='open'") == 1


def test_open_dossiers_per_client_are_capped(config, conn):
    app = create_app(config, {"TESTING": True, "CREATE_BURST": 100})
    flooder = program(app, "10.0.0.66")
    codes = [flooder.post("/api/dossiers", json={"procedure": "khac"}).status_code
             for _ in range(10)]
    assert codes == [201] * 3 + [429] * 7
    assert count(conn) == 3


def test_open_dossiers_in_total_are_capped_and_abandoned_ones_make_room(config, conn):
    app = create_app(config, {"TESTING": True, "MAX_OPEN_DOSSIERS": 10})
    codes = [program(app, f"10.3.{n // 200}.{n % 200}").post(
        "/api/dossiers", json={"procedure": "khac"}).status_code for n in range(60)]
    assert codes.count(201) == 10 and set(codes) == {201, 503}
    assert count(conn) == 10  # 10 codes drawn, not 60
    # sessions long gone: their dossiers are abandoned and make room (the lease is 0 s)
    app2 = create_app(config, {"TESTING": True, "MAX_OPEN_DOSSIERS": 10,
                               "DOSSIER_LEASE_SECONDS": 0})
    assert program(app2, "10.9.0.1").post("/api/dossiers",
                                          json={"procedure": "khac"}).status_code == 201
    assert count(conn, "SELECT COUNT(*) FROM dossiers WHERE status='open'") == 1
    assert count(conn, "SELECT COUNT(*) FROM dossiers WHERE status='cancelled'") == 10


def test_a_live_session_keeps_its_dossier_when_room_is_made(config, conn):
    app = create_app(config, {"TESTING": True, "MAX_OPEN_DOSSIERS": 2,
                              "DOSSIER_LEASE_SECONDS": 3600})
    kiosk = browser(app)
    post_form(kiosk, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE})
    with kiosk.session_transaction() as s:
        mine = s["dossier_id"]
    program(app, "10.0.0.2").post("/api/dossiers", json={"procedure": "khac"})
    r = program(app, "10.0.0.3").post("/api/dossiers", json={"procedure": "khac"})
    assert r.status_code == 503 and r.get_json()["error"] == "error.too_many_open"
    assert dossiers.get(conn, mine).status == "open"


def test_scan_requests_are_rate_limited_per_client(config, conn):
    app = create_app(config, {"TESTING": True, "SCAN_BURST": 3})
    p = program(app, "10.0.0.5")
    dossier_id = p.post("/api/dossiers", json={"procedure": "khac"}).get_json()["id"]
    codes = []
    for _ in range(6):
        r = p.post(f"/api/dossiers/{dossier_id}/scans", json={"source": "adf"})
        codes.append(r.status_code)
        if r.status_code == 202:
            jobs.finish(conn, r.get_json()["job_id"])  # the worker finished it
    assert codes == [202] * 3 + [429] * 3
