"""Encryption at rest: sealed files keep their plaintext address, a wrong or missing key
stops everything at start with exit 2, and nothing is ever overwritten.

Keys are made here, at test time, in each test's own folder; none is committed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.store.db import connect, default_key_path, open_text, seal_text
from appliance.store.errors import StoreError
from appliance.store.files import FileStore
from appliance.system import crypto
from appliance.system.config import Config, dump, with_overrides
from appliance.system.crypto import KeyProblem, Sealer
from appliance.system.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SECRET = b"NGUYEN VAN AN 001203004567 " * 40


def test_key_file_is_created_once_root_only_and_never_overwritten(tmp_path):
    key = tmp_path / "keys" / "appliance.key"
    assert crypto.create_key(key) is True
    first = key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert crypto.create_key(key) is False
    assert key.read_bytes() == first
    assert crypto.init_key(key) == 0 and key.read_bytes() == first
    assert len(crypto.read_key(key)) == crypto.KEY_BYTES


def test_sealed_blob_is_bound_to_its_place_and_detects_changes(tmp_path):
    crypto.create_key(tmp_path / "k")
    sealer = crypto.load_sealer(tmp_path / "k")
    blob = sealer.seal(b"page", b"a.png")
    assert sealer.open(blob, b"a.png") == b"page"
    with pytest.raises(crypto.Tampered):
        sealer.open(blob, b"b.png")  # moved to another address
    flipped = bytearray(blob)
    flipped[-3] ^= 1
    with pytest.raises(crypto.Tampered):
        sealer.open(bytes(flipped), b"a.png")
    with pytest.raises(crypto.Tampered):
        Sealer(os.urandom(32)).open(blob, b"a.png")  # another installation's key


@pytest.mark.parametrize("damage", [
    lambda v: v + "A",                    # base64 of the wrong length
    lambda v: v[:10] + "*" + v[11:],      # a byte outside the alphabet
    lambda v: v[:10] + "\n" + v[10:],    # a line break (non-strict base64 skips it)
    lambda v: v + "==",                   # padding after the end
    lambda v: v[:-8] + ("B" if v[-8] != "B" else "C") + v[-7:],  # a changed byte
])
def test_a_damaged_sealed_text_never_opens(damage):
    """Text sealed into a column: anything but what seal_text wrote is Tampered (never
    a garbled value, never another exception)."""
    sealer = Sealer(os.urandom(32))
    value = sealer.seal_text("Nguyễn Văn An", "records.body_json:r-1")
    assert sealer.open_text(value, "records.body_json:r-1") == "Nguyễn Văn An"
    with pytest.raises(crypto.Tampered):
        sealer.open_text(damage(value), "records.body_json:r-1")


def test_files_are_sealed_under_the_plaintext_hash(tmp_path):
    conn = connect(tmp_path / "db.sqlite3")  # makes the demo key beside the database
    files = FileStore(tmp_path / "files")
    sha = files.put(SECRET, ".png")
    assert sha == hashlib.sha256(SECRET).hexdigest()
    raw = files.path(sha, ".png").read_bytes()
    assert b"NGUYEN" not in raw and b"001203004567" not in raw
    assert files.read(sha, ".png") == SECRET
    files.put_derived(sha, ".thumb.jpg", b"thumbnail")
    assert files.read_derived(sha, ".thumb.jpg") == b"thumbnail"
    assert files.put(SECRET, ".png") == sha  # idempotent
    conn.close()


def test_swapped_or_changed_files_do_not_open(tmp_path):
    connect(tmp_path / "db.sqlite3").close()
    files = FileStore(tmp_path / "files")
    a = files.put(b"page A " * 50, ".png")
    b = files.put(b"page B " * 50, ".png")
    a_bytes = files.path(a, ".png").read_bytes()
    files.path(a, ".png").write_bytes(files.path(b, ".png").read_bytes())
    with pytest.raises(StoreError, match="corrupt"):
        files.read(a, ".png")
    changed = bytearray(a_bytes)
    changed[40] ^= 0xFF
    files.path(a, ".png").write_bytes(bytes(changed))
    with pytest.raises(StoreError, match="corrupt"):
        files.read(a, ".png")
    # a thumbnail cannot be passed off as the master of the same page either
    files.put_derived(b, ".thumb.jpg", b"small")
    files.path(b, ".png").write_bytes(files.path(b, ".thumb.jpg").read_bytes())
    with pytest.raises(StoreError):
        files.read(b, ".png")


def test_file_written_before_sealing_is_still_read_and_verified(tmp_path):
    connect(tmp_path / "db.sqlite3").close()
    files = FileStore(tmp_path / "files")
    plain = b"%PDF-1.7 old"
    sha = hashlib.sha256(plain).hexdigest()
    files.path(sha, ".pdf").parent.mkdir(parents=True)
    files.path(sha, ".pdf").write_bytes(plain)
    assert files.read(sha, ".pdf") == plain
    files.remove(sha, ".pdf")
    assert not files.exists(sha, ".pdf")


def test_sealed_column_values_are_bound_to_their_row(tmp_path):
    conn = connect(tmp_path / "db.sqlite3")
    value = seal_text(conn, '{"cccd": "001203004567"}', "papers.fields_json:1")
    assert "001203004567" not in value
    assert open_text(conn, value, "papers.fields_json:1") == '{"cccd": "001203004567"}'
    with pytest.raises(StoreError):
        open_text(conn, value, "papers.fields_json:2")
    assert open_text(conn, "{}", "papers.fields_json:1") == "{}"  # stored before sealing
    conn.close()


def test_missing_key_with_sealed_data_is_refused_and_not_recreated(tmp_path):
    db = tmp_path / "db.sqlite3"
    connect(db).close()
    key = default_key_path(db)
    key.unlink()
    with pytest.raises(KeyProblem, match="restore that key file"):
        connect(db)
    assert not key.exists(), "a new key would orphan the data sealed with the old one"


def test_wrong_key_is_refused_and_the_key_file_kept(tmp_path):
    db = tmp_path / "db.sqlite3"
    connect(db).close()
    key = default_key_path(db)
    key.unlink()
    crypto.create_key(key)  # someone "fixes" it with a fresh key
    other = key.read_bytes()
    with pytest.raises(KeyProblem, match="does not match"):
        connect(db)
    assert key.read_bytes() == other
    assert isinstance(KeyProblem("x"), ConfigError)


def test_a_named_key_file_must_exist(tmp_path):
    with pytest.raises(KeyProblem, match="keys init"):
        connect(tmp_path / "db.sqlite3", key_file=tmp_path / "etc" / "appliance.key")
    assert not (tmp_path / "etc" / "appliance.key").exists()
    crypto.create_key(tmp_path / "etc" / "appliance.key")
    connect(tmp_path / "db.sqlite3", key_file=tmp_path / "etc" / "appliance.key").close()


def test_systemd_credential_is_preferred(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    crypto.create_key(creds / crypto.KEY_FILE_NAME)
    monkeypatch.setenv(crypto.CREDENTIALS_ENV, str(creds))
    # the configured path is root-only (unreadable to the service): never read
    assert crypto.read_key(tmp_path / "not-readable") == crypto.read_key(
        creds / crypto.KEY_FILE_NAME)


def _run(args: list[str], config: Config, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(dump(config), encoding="utf-8")
    env = dict(os.environ, APPLIANCE_CONFIG=str(cfg))
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60, check=False)


def test_worker_refuses_to_start_with_a_wrong_key_exit_2(tmp_path):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                            ocr={"enabled": False})
    connect(config.paths.database).close()
    config.paths.key_path.unlink()
    crypto.create_key(config.paths.key_path)
    before = config.paths.key_path.read_bytes()
    done = _run(["-m", "appliance", "worker"], config, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "encryption key does not match" in done.stderr
    assert config.paths.key_path.read_bytes() == before


def test_keys_init_makes_the_provisioned_key(tmp_path):
    key = tmp_path / "etc" / "appliance.key"
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data"),
                                             "key_file": str(key)})
    done = _run(["-m", "appliance.system.crypto", "init"], config, tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_bytes()
    assert _run(["-m", "appliance.system.crypto", "init"], config, tmp_path).returncode == 0
    assert key.read_bytes() == first


def test_an_upgraded_device_has_its_clear_values_and_files_sealed(tmp_path):
    """Data an unencrypted build wrote is sealed at the next start, and reads the same."""
    from appliance.records import dossiers

    config = with_overrides(Config(), paths={"data_dir": str(tmp_path)})
    conn = connect(config.paths.database)
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    paper_id = dossiers.add_paper(conn, dossier_id, "Tờ khai")
    # what the old build left: a clear value and a clear file
    conn.execute("UPDATE papers SET fields_json=? WHERE id=?",
                 ('{"values": {"cccd": "001203004567"}}', paper_id))
    plain = b"%PDF-1.7 NGUYEN VAN AN"
    sha = hashlib.sha256(plain).hexdigest()
    files = FileStore(config.paths.files)
    files.path(sha, ".pdf").parent.mkdir(parents=True)
    files.path(sha, ".pdf").write_bytes(plain)
    conn.close()
    conn = connect(config.paths.database)
    raw = conn.execute("SELECT fields_json FROM papers WHERE id=?", (paper_id,)).fetchone()[0]
    assert raw.startswith(crypto.TEXT_PREFIX)
    assert dossiers.get(conn, dossier_id).papers[0].fields == {"values": {"cccd": "001203004567"}}
    assert b"NGUYEN" not in files.path(sha, ".pdf").read_bytes()
    assert files.read(sha, ".pdf") == plain
    conn.close()


def test_services_starting_together_on_a_fresh_database_share_one_key(tmp_path):
    code = ("import sys; from appliance.store.db import connect; "
            "c = connect(sys.argv[1]); print(c.sealer.check_value); c.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "db.sqlite3")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1


@pytest.mark.parametrize("service", ["web", "sync"])
def test_other_services_refuse_a_missing_key_with_exit_2(tmp_path, service):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")},
                            web={"bind": "127.0.0.1:1"})
    connect(config.paths.database).close()
    config.paths.key_path.unlink()
    done = _run(["-m", "appliance", service], config, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "restore that key file" in done.stderr
    assert not config.paths.key_path.exists()
