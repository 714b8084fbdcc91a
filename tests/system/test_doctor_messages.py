"""Every line `appliance doctor` can put on the technician panel reads in Vietnamese
and English: each `Check` carries a message key and its arguments (`doctor.Message`)
beside the English text the command prints.

Two ways in, so that no key escapes: the source (every `msg(...)` and every `Check(...)`
in the modules whose checks reach `doctor.local_checks`, read with `ast`), and the
checks themselves, driven to the outcomes a test can reach with real files, a real
SQLite database, real certificates and real sockets. Each message found is looked up
in both tables and filled as the panel fills it.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import socket
import sqlite3
import string
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance import cli
from appliance.store import state
from appliance.store.db import connect
from appliance.sync.heartbeat import Heartbeat
from appliance.system import crypto, doctor
from appliance.system.config import Config, with_overrides
from appliance.system.doctor import Check, Message, Verdict
from appliance.web import i18n
from tests.system.test_doctor_facts import write_certificate

REPO = Path(__file__).resolve().parents[2]
# The modules whose checks reach doctor.local_checks (the panel, the heartbeat): the
# doctor's own, the CLI's models and schema (kept in the saved round), sync's broker.
# appliance/provision's checks are `appliance provision report`'s, printed only.
SOURCES = ("appliance/system/doctor.py", "appliance/cli.py", "appliance/sync/heartbeat.py")
TABLES = {lang: json.loads((Path(i18n.__file__).parent / "translations" / f"{lang}.json")
                           .read_text("utf-8")) for lang in i18n.LANGUAGES}
# Letters only Vietnamese writes here: a text without one has lost its diacritics.
VIETNAMESE = set("ăâđêôơưĂÂĐÊÔƠƯ"
                 "àáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def filled(lang: str, message: Message) -> str:
    """The text as the panel makes it (technician.doctor_text): `*_key` arguments are
    keys, translated, and given without the suffix."""
    args = {name.removesuffix("_key"): TABLES[lang].get(str(v), str(v))
            if name.endswith("_key") else v for name, v in message.args.items()}
    return TABLES[lang][message.key].format(**args)


def assert_reads_in_both(key: str, args: set[str]) -> None:
    """The key is in both tables, Vietnamese NFC with its diacritics and not the English,
    and the placeholders are exactly the arguments given (`*_key` without the suffix)."""
    given = {a.removesuffix("_key") for a in args}
    for lang in i18n.LANGUAGES:
        assert TABLES[lang].get(key, "").strip(), (lang, key)
        assert placeholders(TABLES[lang][key]) == given, (lang, key, given)
    vi, en = TABLES["vi"][key], TABLES["en"][key]
    assert unicodedata.normalize("NFC", vi) == vi, key
    assert vi != en, key
    assert VIETNAMESE & set(vi), (key, vi)


# --- every key in the source -----------------------------------------------------------

def _literals(node: ast.expr) -> list[str]:
    """The key a msg(...) names: a literal, or a choice between two literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    raise AssertionError(f"a message key that is not a literal: {ast.unparse(node)}")


def _calls(name: str) -> Iterator[tuple[str, ast.Call]]:
    for source in SOURCES:
        tree = ast.parse((REPO / source).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else (
                    node.func.id if isinstance(node.func, ast.Name) else "")
                if called == name:
                    yield source, node


def source_messages() -> dict[str, set[str]]:
    """key -> its argument names, for every msg(...) in SOURCES."""
    found: dict[str, set[str]] = {}
    for source, call in _calls("msg"):
        assert all(kw.arg for kw in call.keywords), (source, ast.unparse(call))
        for key in _literals(call.args[0]):
            args = {kw.arg for kw in call.keywords if kw.arg}
            assert found.setdefault(key, args) == args, (source, key)
    return found


def test_every_message_key_in_the_source_reads_in_vietnamese_and_english():
    found = source_messages()
    assert len(found) >= 80  # the search finds what it is meant to
    assert {"tech.doctor.summary.disk.below", "tech.doctor.next.disk.free_now",
            "tech.doctor.summary.schema.newer", "tech.doctor.summary.broker.connected",
            "tech.doctor.summary.scanner.worker_failed"} <= set(found)
    for key, args in sorted(found.items()):
        assert key.startswith(("tech.doctor.summary.", "tech.doctor.next.")), key
        assert_reads_in_both(key, args)


def test_every_check_in_the_source_says_its_summary_and_next_step_by_key():
    """A new Check(...) without a key would show English on a Vietnamese screen."""
    seen = 0
    for source, call in _calls("Check"):
        keywords = {kw.arg for kw in call.keywords}
        where = f"{source}:{call.lineno}"
        assert "summary_msg" in keywords, where
        if len(call.args) >= 4 or "next_step" in keywords:
            assert "next_msg" in keywords, where
        seen += 1
    assert seen >= 50


def test_the_units_check_has_a_name_on_the_panel():
    assert TABLES["vi"]["tech.doctor.check.units"] == "Dịch vụ hệ thống"


# --- the checks, driven to their outcomes ----------------------------------------------

def device(tmp_path: Path, **sections: dict[str, object]) -> Config:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    paths = {"data_dir": str(data), **sections.pop("paths", {})}
    return with_overrides(Config(), paths=paths, **sections)


def sqlite_file(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()
    return path


def expired_certificate(path: Path, days_ago: int) -> Path:
    """A real self-signed certificate that expired `days_ago` days ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk-01")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now - dt.timedelta(days=days_ago))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server that answers every connection with a line of plain text: reachable
    without TLS, a refused handshake with TLS."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 not a broker\r\n\r\n" * 4)
                time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


def outcomes(tmp_path: Path, port: int) -> list[Check]:
    """Every outcome reachable here, each from its check run on real files."""
    found: list[Check] = []
    empty_disk = {"disk_fail_mb": 0, "disk_warn_mb": 0}
    # disk: unreadable (no such folder, nor its parent), full, nearly full, fine
    found.append(doctor.check_disk(with_overrides(
        Config(), paths={"data_dir": str(tmp_path / "gone" / "data")})))
    full = {"disk_fail_mb": 10**9, "disk_warn_mb": 10**9}
    found.append(doctor.check_disk(device(tmp_path, health=full)))
    found.append(doctor.check_disk(device(tmp_path, health={"disk_fail_mb": 0,
                                                            "disk_warn_mb": 10**9})))
    found.append(doctor.check_disk(device(tmp_path, health=empty_disk)))

    # database, key, queue, schema: none yet
    fresh = device(tmp_path / "fresh")
    found += [doctor.check_database(fresh), doctor.check_key(fresh), doctor.check_queue(fresh),
              cli._check_schema(fresh)]
    # the key file named in the configuration but missing; not a key at all
    found.append(doctor.check_key(device(tmp_path / "named", paths={
        "key_file": str(tmp_path / "named" / "absent.key")})))
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not base64 at all!\n", encoding="utf-8")
    found.append(doctor.check_key(device(tmp_path / "badkey", paths={
        "key_file": str(bad_key)})))
    # a file that is no database; an empty file; a database without the outbox
    broken = device(tmp_path / "broken")
    broken.paths.database.write_bytes(b"this is not an SQLite database" * 100)
    found += [doctor.check_database(broken), doctor.check_queue(broken)]
    empty = device(tmp_path / "empty")
    empty.paths.database.write_bytes(b"")
    found.append(doctor.check_database(empty))
    bare = device(tmp_path / "bare")
    sqlite_file(bare.paths.database, "CREATE TABLE t (x)")
    found += [doctor.check_queue(bare), doctor.check_key(bare)]
    # a record waiting for two days, and one just signed
    waiting = device(tmp_path / "waiting")
    sqlite_file(waiting.paths.database, "CREATE TABLE outbox (state TEXT, created_at REAL)",
                f"INSERT INTO outbox VALUES ('pending', {time.time() - 2 * 86400})",
                f"INSERT INTO outbox VALUES ('pending', {time.time() - 120})")
    found.append(doctor.check_queue(waiting))
    sqlite_file(waiting.paths.database, "DELETE FROM outbox WHERE created_at < "
                                        f"{time.time() - 3600}")
    found.append(doctor.check_queue(waiting))
    # schema: newer than this software, older, current (a real store database)
    real = device(tmp_path / "real")
    conn = connect(real.paths.database, key_file=real.paths.key_file)
    try:
        state.choose_scanner(conn, "scanner:vendor=Fujitsu&model=fi-8170&serial=A1B2C3")
        state.set_scanner(conn, state.ScannerState.ERROR, "scanner.jammed")
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    found += [doctor.check_database(real), doctor.check_key(real), doctor.check_queue(real),
              cli._check_schema(real)]
    worker = doctor.check_scanner_state(real)
    assert worker is not None
    found.append(worker)
    for version in (current + 5, current - 1):
        sqlite_file(real.paths.database, f"PRAGMA user_version={version}")
        found.append(cli._check_schema(real))
    # the worker's last use, fine, with no scanner chosen or configured
    anyone = device(tmp_path / "anyone")
    conn = connect(anyone.paths.database, key_file=anyone.paths.key_file)
    try:
        state.set_scanner(conn, state.ScannerState.READY)
    finally:
        conn.close()
    found.append(doctor.check_scanner_state(anyone))  # type: ignore[arg-type]
    # the key the database was sealed with replaced by another one
    other = tmp_path / "other.key"
    crypto.create_key(other)
    real.paths.key_path.write_bytes(other.read_bytes())
    found.append(doctor.check_key(real))

    # certificates: expired, expiring, valid, unreadable, none
    expired_certificate(tmp_path / "expired.crt", days_ago=3)
    for days, name in ((None, "expired"), (10, "soon"), (400, "fine")):
        cert = (write_certificate(tmp_path / f"{name}.crt", days_left=days) if days
                else tmp_path / f"{name}.crt")
        found.append(doctor.check_certificate(device(tmp_path, mqtt={"cert_file": str(cert)})))
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnope\n", encoding="utf-8")
    found.append(doctor.check_certificate(device(tmp_path, mqtt={"cert_file": str(garbage)})))
    found.append(doctor.check_certificate(device(tmp_path)))

    # the broker: none, unreachable, reachable, TLS refused
    found.append(doctor.check_broker(device(tmp_path)))
    broker = {"host": "127.0.0.1", "tls": False}
    found.append(doctor.check_broker(device(tmp_path, mqtt={**broker, "port": dead_port()},
                                            health={"broker_timeout_seconds": 2})))
    found.append(doctor.check_broker(device(tmp_path, mqtt={**broker, "port": port})))
    found.append(doctor.check_broker(device(tmp_path, mqtt={**broker, "port": port,
                                                           "tls": True},
                                            health={"broker_timeout_seconds": 5})))

    # models switched off; the clock and the units as this machine has them
    found.append(cli._check_models(device(tmp_path, ocr={"enabled": False})))
    found.append(doctor.check_clock(device(tmp_path)))
    found += doctor.check_units(device(tmp_path))

    # a check that raises, a configuration that does not load, what the web never does
    def broken_check(_config: Config) -> Check:
        raise RuntimeError("boom")

    found += doctor.check_all(device(tmp_path), {"broken": broken_check})
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[web]\nthreads = 'four'\n", encoding="utf-8")
    found += doctor.run_checks(bad_config)
    found += doctor.local_checks(device(tmp_path / "fresh"))

    # sync's heartbeat: the broker line as sync knows it
    heartbeat = Heartbeat(device(tmp_path, mqtt={"host": "broker.example", "port": 8883}))
    heartbeat.look()
    assert heartbeat.ready is not None
    found += [Check.from_dict(c) for c in json.loads(heartbeat.ready)["checks"]]
    return found


def test_every_outcome_reached_reads_in_vietnamese_and_english(tmp_path, listener):
    found = outcomes(tmp_path, listener)
    keys = {c.summary_msg.key for c in found if c.summary_msg}
    keys |= {c.next_msg.key for c in found if c.next_msg}
    by_key: dict[str, Check] = {}  # the first outcome under each key
    for c in found:
        if c.summary_msg:
            by_key.setdefault(c.summary_msg.key, c)
    # The non-ok outcomes this test means to reach, each under its own key.
    assert {"tech.doctor.summary.disk.unreadable", "tech.doctor.summary.disk.below",
            "tech.doctor.summary.database.missing", "tech.doctor.summary.database.unreadable",
            "tech.doctor.summary.database.empty", "tech.doctor.summary.key.missing",
            "tech.doctor.summary.key.missing_nothing_sealed",
            "tech.doctor.summary.key.problem", "tech.doctor.summary.key.mismatch",
            "tech.doctor.summary.queue.unreadable", "tech.doctor.summary.queue.waiting",
            "tech.doctor.summary.no_database", "tech.doctor.summary.schema.newer",
            "tech.doctor.summary.schema.older", "tech.doctor.summary.certificate.expired",
            "tech.doctor.summary.certificate.expires",
            "tech.doctor.summary.certificate.unreadable",
            "tech.doctor.summary.certificate.none", "tech.doctor.summary.broker.none",
            "tech.doctor.summary.broker.unreachable", "tech.doctor.summary.broker.tls_refused",
            "tech.doctor.summary.scanner.worker_failed",
            "tech.doctor.summary.scanner.worker_used_first",
            "tech.doctor.summary.models.disabled", "tech.doctor.summary.check_failed",
            "tech.doctor.summary.config.invalid", "tech.doctor.summary.not_checked_here",
            "tech.doctor.summary.broker.connected"} <= keys, sorted(keys)
    assert by_key["tech.doctor.summary.disk.below"].verdict in (Verdict.FAIL, Verdict.WARN)
    assert by_key["tech.doctor.summary.key.mismatch"].verdict is Verdict.FAIL
    for check in found:
        assert check.summary_msg is not None, check
        assert check.summary, check  # the English text stays, for the CLI and the logs
        if check.next_step:
            assert check.next_msg is not None, check
        for message in (check.summary_msg, check.next_msg):
            if message is None:
                continue
            assert_reads_in_both(message.key, set(message.args))
            vi, en = filled("vi", message), filled("en", message)
            assert "{" not in TABLES["vi"][message.key].format_map(
                {a.removesuffix("_key"): "" for a in message.args}), message
            assert vi.strip() and en.strip(), message
            assert unicodedata.normalize("NFC", vi) == vi
            assert VIETNAMESE & set(vi), vi
    # The figures travel as arguments, not inside the key: the text shows them.
    waiting = by_key["tech.doctor.summary.queue.waiting"]
    assert waiting.verdict is Verdict.WARN and waiting.next_msg is not None
    assert waiting.summary_msg is not None and waiting.summary_msg.args["count"] == 2
    assert filled("vi", waiting.summary_msg).startswith("2 kết quả đang chờ gửi, lâu nhất "
                                                        "đã chờ 48 giờ")
    expired = by_key["tech.doctor.summary.certificate.expired"]
    assert expired.summary_msg is not None
    assert filled("vi", expired.summary_msg) == (
        f"{tmp_path / 'expired.crt'} đã hết hạn 3 ngày trước")
    assert expired.summary == f"{tmp_path / 'expired.crt'} expired 3 day(s) ago"  # unchanged
    # The scanner's fault is a message key itself, translated in the summary.
    jammed = by_key["tech.doctor.summary.scanner.worker_failed"]
    assert jammed.summary_msg is not None
    assert filled("vi", jammed.summary_msg) == (
        "Fujitsu fi-8170 (A1B2C3): lần gần nhất bộ xử lý quét dùng máy bị lỗi: "
        + TABLES["vi"]["scanner.jammed"])


# --- the saved form ----------------------------------------------------------------------

def test_messages_travel_in_the_report_and_an_old_report_still_loads(tmp_path):
    config = device(tmp_path, health={"disk_fail_mb": 10**9, "disk_warn_mb": 10**9})
    full = doctor.check_disk(config)
    assert full.verdict is Verdict.FAIL and full.summary_msg and full.next_msg
    assert Check.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    doctor.save_report(config, [full], now=time.time() - 60)
    (kept,) = doctor.load_report(config)
    assert (kept.summary_msg, kept.next_msg) == (full.summary_msg, full.next_msg)
    assert (kept.summary, kept.next_step) == (full.summary, full.next_step)
    # A round saved by an older release: no keys. It loads, with its English text.
    doctor.report_path(config).write_text(json.dumps({"at": time.time(), "checks": [
        {"name": "broker", "verdict": "warn", "summary": "10.0.0.5:8883 unreachable",
         "next_step": "check the office's Internet link", "as_of": None}]}),
        encoding="utf-8")
    (old,) = doctor.load_report(config)
    assert (old.summary_msg, old.next_msg) == (None, None)
    assert old.summary == "10.0.0.5:8883 unreachable" and old.as_of is not None
    # Malformed parts are dropped, never fatal.
    odd = Check.from_dict({"name": "disk", "verdict": "ok", "summary": "fine",
                           "summary_key": "tech.doctor.summary.disk.free",
                           "summary_args": ["not", "a", "mapping"], "next_key": 7})
    assert (odd.summary_msg, odd.next_msg) == (None, None)
