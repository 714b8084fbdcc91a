"""The technician panel through the Flask test client: who may open it, the broker test
against a real mosquitto, the configuration file checked key by key, the queue, the
models' checksums, the journal where there is none, and what the scanner routes
accept (the worker's side, a real test scan, is in test_technician_browser.py).
"""

from __future__ import annotations

import re

import pytest

from appliance.records import dossiers
from appliance.store import jobs, outbox, state
from appliance.store.jobs import JobKind
from appliance.sync import probe
from appliance.system import config as config_mod
from appliance.system.config import Config, MqttConfig, with_overrides
from appliance.web import create_app
from tests.helpers.mosquitto import free_port, start_mosquitto
from tests.web.helpers import submitted_dossier

TECH_PIN = "246813"
OFFICER_PIN = "135792"
TECH = {"X-Technician-PIN": TECH_PIN}


def make_client(config: Config):
    return create_app(config, {"TESTING": True}).test_client()


@pytest.fixture
def locked(config: Config) -> Config:
    return with_overrides(config, web={"officer_pin": OFFICER_PIN,
                                       "technician_pin": TECH_PIN})


@pytest.fixture
def tech(locked: Config):
    return make_client(locked)


def job_count(conn) -> int:
    return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


# --- who may open it ---------------------------------------------------------------
def test_officer_pin_does_not_open_the_panel_when_a_technician_pin_is_set(tech):
    for headers in ({}, {"X-Officer-PIN": OFFICER_PIN}):
        r = tech.get("/technician", headers=headers)
        assert r.status_code == 302 and "/staff/login" in r.headers["Location"], headers
        r = tech.get("/api/technician/status", headers=headers)
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
        assert r.get_json()["error"] == "error.technician_only"
        r = tech.post("/api/technician/scanners/test", headers=headers, json={})
        assert r.status_code == 403
    assert tech.get("/technician", headers=TECH).status_code == 200
    assert tech.get("/api/technician/status", headers=TECH).status_code == 200


def test_officer_keypad_session_is_not_a_technician_session(tech):
    page = tech.get("/staff/login?next=/officer")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    r = tech.post("/staff/login", data={"pin": OFFICER_PIN, "next": "/officer",
                                        "csrf_token": token})
    assert r.status_code == 302
    assert tech.get("/officer").status_code == 200
    assert tech.get("/technician").status_code == 302
    assert tech.get("/api/technician/queue").status_code == 403
    # the technician keypad takes the technician PIN
    page = tech.get("/staff/login?next=/technician")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    r = tech.post("/staff/login", data={"pin": TECH_PIN, "next": "/technician",
                                        "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/technician")
    assert tech.get("/technician").status_code == 200


def test_a_citizen_session_gets_nothing(tech, conn):
    r = tech.post("/api/dossiers", json={"procedure": "khac"})
    assert r.status_code == 201  # the session now holds a citizen's dossier
    assert tech.get("/technician").status_code == 302
    for url in ("/api/technician/status", "/api/technician/config", "/api/technician/journal",
                "/api/technician/queue", "/api/technician/models"):
        assert tech.get(url).status_code == 403, url
    # with the session's own CSRF token, so that the role is what refuses
    token = {"X-CSRFToken": tech.get("/api/session").get_json()["csrf_token"]}
    assert tech.post("/api/technician/broker/test", headers=token).status_code == 403
    assert tech.post("/api/technician/scanners/choose", headers=token,
                     json={"identity": "scanner:model=X"}).status_code == 403
    assert tech.post("/api/technician/scanners/test", headers=token,
                     json={}).status_code == 403
    assert state.chosen_scanner(conn) == ""
    assert job_count(conn) == 0


# --- broker -------------------------------------------------------------------------
def test_broker_test_connects_to_a_real_mosquitto_and_names_a_closed_port(
        locked, conn, tmp_path):
    broker = start_mosquitto(tmp_path / "broker")
    try:
        ok_config = with_overrides(locked, mqtt={"host": "127.0.0.1", "port": broker.port})
        body = make_client(ok_config).post("/api/technician/broker/test",
                                           headers=TECH).get_json()
        assert body["ok"] is True and body["key"] == "sync.probe.ok", body
        assert 0 < body["ms"] < 5000
        assert body["message"] == f"Đã kết nối tới máy chủ 127.0.0.1:{broker.port} " \
                                  f"trong {body['ms']} ms."
    finally:
        broker.stop()
    closed = with_overrides(locked, mqtt={"host": "127.0.0.1", "port": free_port()})
    body = make_client(closed).post("/api/technician/broker/test?lang=en",
                                    headers=TECH).get_json()
    assert body["ok"] is False and body["key"] == "sync.probe.refused"
    assert "refused the connection" in body["message"] and "Next:" in body["message"]
    body = make_client(closed).post("/api/technician/broker/test", headers=TECH).get_json()
    assert "từ chối kết nối" in body["message"] and "Bước tiếp" in body["message"]


def test_probe_names_each_failure(tmp_path):
    assert probe.probe(MqttConfig(), "p").key == "sync.probe.no_broker"
    assert probe.probe(MqttConfig(host="no-such-host.invalid"), "p").key == "sync.probe.dns"
    assert probe.probe(MqttConfig(host="127.0.0.1", tls=True, ca_file=str(tmp_path / "none")),
                       "p").key == "sync.probe.tls_files"
    broker = start_mosquitto(tmp_path / "closed", anonymous=False)
    try:
        # TLS spoken to a plain listener, and a broker that admits no anonymous client
        tls = probe.probe(MqttConfig(host="127.0.0.1", port=broker.port, tls=True), "p", 3)
        assert tls.key == "sync.probe.tls" and not tls.ok
        refused = probe.probe(MqttConfig(host="127.0.0.1", port=broker.port), "p")
        assert refused.key == "sync.probe.not_authorised", refused
    finally:
        broker.stop()


# --- configuration ------------------------------------------------------------------
def test_config_view_names_each_bad_key_of_the_file_on_disk(locked, monkeypatch, tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text(config_mod.dump(locked), encoding="utf-8")
    monkeypatch.setenv(config_mod.CONFIG_ENV, str(path))
    client = make_client(locked)
    page = client.get("/technician", headers=TECH).get_data(as_text=True)
    assert 'id="config-ok"' in page and 'id="config-problems"' not in page
    assert TECH_PIN not in page and OFFICER_PIN not in page  # secrets are only "set"
    path.write_text(config_mod.dump(locked).replace("[mqtt]\n", "[mqtt]\nprot = 1883\n")
                    .replace("resolution = 200", "resolution = 100"), encoding="utf-8")
    page = client.get("/technician", headers=TECH).get_data(as_text=True)
    problems = page[page.index('id="config-problems"'):]
    assert "mqtt.prot" in problems and "did you mean &#39;port&#39;" in problems
    body = client.get("/api/technician/config", headers=TECH).get_json()
    assert body["file"] == str(path)
    assert body["problems"][0]["key"] == "mqtt.prot"
    # the rules between keys are checked once every key is well-formed
    path.write_text(config_mod.dump(locked).replace("resolution = 200", "resolution = 100"),
                    encoding="utf-8")
    body = client.get("/api/technician/config", headers=TECH).get_json()
    assert body["problems"] == [{"key": "scanner.resolution",
                                 "message": "Decree 30/2020 requires at least 200 dpi"}]


def test_config_problems_lists_every_bad_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[mqtt]\nprot = 1\nhost = 5\n[web]\nthreads = "x"\n[bogus]\na = 1\n',
                    encoding="utf-8")
    assert [k for k, _ in config_mod.problems(path)] == ["mqtt.prot", "mqtt.host",
                                                         "web.threads", "bogus"]
    path.write_text("[mqtt\n", encoding="utf-8")
    [(key, message)] = config_mod.problems(path)
    assert key == "" and "not valid TOML" in message


# --- queue, models, journal, versions ------------------------------------------------
def test_queue_shows_counts_the_oldest_waiting_and_dead_letters_with_reasons(
        tech, locked, conn):
    record_id = dossiers.sign_off(conn, locked, submitted_dossier(conn, locked), "Lê Thị B")
    outbox.put_dead_letter(conn, "bhxh/ack/kiosk-01", outbox.DeadLetterKind.FORGED,
                           "signature does not verify", b"{}")
    body = tech.get("/api/technician/queue", headers=TECH).get_json()
    assert body["counts"] == {"pending": 1, "sending": 0, "delivered": 0}
    assert body["waiting"][0]["record_id"] == record_id and body["oldest_age_s"] >= 0
    assert body["dead_letters"][0]["reason"] == "signature does not verify"
    assert body["dead_letter_counts"] == {"total": 1, "forged": 1}
    page = tech.get("/technician", headers=TECH).get_data(as_text=True)
    assert record_id in page and "signature does not verify" in page


def test_models_are_hashed_on_request(tech):
    listed = tech.get("/api/technician/models", headers=TECH).get_json()
    checked = tech.get("/api/technician/models?verify=true", headers=TECH).get_json()
    assert listed and {m["check"] for m in listed} == {"not_checked"}
    present = [m for m in checked if m["check"] != "missing"]
    assert present and all(m["check"] == "ok" and m["actual_sha256"] == m["sha256"]
                           for m in present), checked
    assert tech.get("/api/technician/models?verify=maybe", headers=TECH).status_code == 400


def test_journal_without_a_journal_is_a_message_never_a_500(tech, monkeypatch, tmp_path):
    body = tech.get("/api/technician/journal", headers=TECH).get_json()
    assert body["entries"] == [] or body["available"] is True
    if not body["entries"]:
        assert body["message"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no journalctl at all
    r = tech.get("/api/technician/journal?lines=5", headers=TECH)
    assert r.status_code == 200 and r.get_json()["available"] is False
    assert "journalctl" in r.get_json()["message"]
    assert tech.get("/technician", headers=TECH).status_code == 200
    assert tech.get("/api/technician/journal?lines=0", headers=TECH).status_code == 400


def test_journal_lines_are_parsed_from_journalctl_json(tech, monkeypatch, tmp_path):
    fake = tmp_path / "journalctl"
    fake.write_text('#!/bin/sh\n'
                    'echo \'{"__REALTIME_TIMESTAMP":"1700000000000000",'
                    '"_SYSTEMD_UNIT":"appliance-worker.service","PRIORITY":"4",'
                    '"MESSAGE":"job 3 failed (scanner.jammed)"}\'\n'
                    'echo \'{"MESSAGE":[104,105],"PRIORITY":"6"}\'\n', encoding="utf-8")
    fake.chmod(0o755)
    # A stand-in for journalctl: the one place no journal can be made here (no
    # systemd-journald runs on the test machine); it prints journalctl's JSON form.
    monkeypatch.setenv("PATH", str(tmp_path))
    body = tech.get("/api/technician/journal", headers=TECH).get_json()
    assert [e["message"] for e in body["entries"]] == ["job 3 failed (scanner.jammed)", "hi"]
    assert body["entries"][0]["unit"] == "appliance-worker.service"
    assert body["entries"][0]["priority"] == 4


def test_versions_name_python_onnxruntime_and_the_sane_backends(tech, locked, tmp_path):
    sane = tmp_path / "sane"
    sane.mkdir()
    (sane / "dll.conf").write_text("# ours\nairscan\nfujitsu # USB\n", encoding="utf-8")
    client = make_client(with_overrides(locked, scanner={"sane_config_dir": str(sane)}))
    body = client.get("/api/technician/versions", headers=TECH).get_json()
    assert body["SANE backends"] == "airscan, fujitsu"
    assert body["python"] and body["onnxruntime"] and body["appliance"]


# --- scanner routes: jobs for the worker ---------------------------------------------
def test_scanner_routes_queue_jobs_and_refuse_bad_input_without_a_trace(tech, conn):
    for body in ({"source": "glass"}, {"device": 5}, {"device": "x" * 600}):
        r = tech.post("/api/technician/scanners/test", headers=TECH, json=body)
        assert r.status_code == 400, body
    r = tech.post("/api/technician/scanners/test", headers=TECH, data=b"{nope")
    assert r.status_code == 400
    for identity in ("airscan:e0:x", 7, None):
        r = tech.post("/api/technician/scanners/choose", headers=TECH,
                      json={"identity": identity})
        assert r.status_code == 400, identity
    assert job_count(conn) == 0 and state.chosen_scanner(conn) == ""
    job_id = tech.post("/api/technician/scanners/test", headers=TECH,
                       json={"source": "adf"}).get_json()["job_id"]
    job = jobs.get(conn, job_id)
    assert job.kind == JobKind.SCANNER_TEST and job.params == {"device": "", "source": "adf"}
    # one technician job at a time: the next waits for this one's result
    for path in ("/api/technician/scanners/test", "/api/technician/scanners/search"):
        r = tech.post(path, headers=TECH, json={})
        assert r.status_code == 409 and r.get_json()["error"] == "tech.job_active"
    assert job_count(conn) == 1
    assert job.dossier_id is None
    body = tech.get(f"/api/technician/jobs/{job_id}", headers=TECH).get_json()
    assert body["state"] == "queued" and body["thumbnail_url"] is None
    assert tech.get(f"/api/technician/jobs/{job_id}/thumbnail",
                    headers=TECH).status_code == 404
    identity = "scanner:vendor=BHXH&model=Demo"
    state.set_scanner_capabilities(conn, {"sources": ["flatbed"]})  # the old scanner's
    r = tech.post("/api/technician/scanners/choose", headers=TECH, json={"identity": identity})
    assert state.scanner_capabilities(conn) is None  # until the worker opens the new one
    assert r.get_json() == {"chosen": identity, "label": "BHXH Demo"}
    assert state.chosen_scanner(conn) == identity
    page = tech.get("/technician", headers=TECH).get_data(as_text=True)
    assert '<strong id="chosen" title="scanner:vendor=BHXH&amp;model=Demo">BHXH Demo<' in page
    # a citizen's scan job is not the technician's to read
    dossier_id = dossiers.create(conn, Config(), "khac")
    scan_job = jobs.enqueue(conn, "scan", dossier_id, {"source": "adf"})
    assert tech.get(f"/api/technician/jobs/{scan_job}", headers=TECH).status_code == 404


def test_openapi_describes_the_panel_with_operation_ids_tags_and_security(tech):
    spec = tech.get("/api/openapi.json").get_json()
    ops = [(path, method, op) for path, item in spec["paths"].items()
           if path.startswith("/api/technician/") for method, op in item.items()]
    assert len(ops) == 13  # ... and /api/technician/doctor (issue 14)
    ids = [op["operationId"] for _, _, op in ops]
    assert len(set(ids)) == len(ids)
    for path, _method, op in ops:
        assert op["tags"] == ["technician"], path
        assert op["security"] == [{"technicianPin": []}, {"technicianSession": []}], path
        assert "403" in op["responses"], path


def test_without_any_pin_the_panel_stays_open_as_shipped(client):
    assert client.get("/technician").status_code == 200
    assert client.get("/api/technician/status").status_code == 200
