"""`appliance doctor` as one source of facts: the scanner the technician chose, the
certificate `appliance provision` installed, and the round kept for the panel and the
heartbeat (`doctor.local_checks`), which never lists the scanner or dials the broker.

The scanner is the eSCL emulator behind SANE's airscan backend, listed by a real
`scanimage` child process, exactly as the doctor does on a device; certificates are
real X.509 files made with `cryptography`.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance import cli
from appliance.scanner.identity import ScannerIdentity
from appliance.scanner.sane_env import write_sane_config
from appliance.store import state
from appliance.store.db import connect
from appliance.system import doctor
from appliance.system.config import Config, with_overrides
from appliance.system.doctor import Check, Verdict
from tests.scanner.demo_scanner import start_demo_scanner, stop_process

REPO = Path(__file__).resolve().parents[2]
MODEL = "Doctor Test Scanner"


def device(tmp_path: Path, **sections: dict[str, object]) -> Config:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return with_overrides(Config(), paths={"data_dir": str(data)}, **sections)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def choose(config: Config, identity: str) -> None:
    """What the panel's "use this scanner" does: store.state.choose_scanner."""
    conn = connect(config.paths.database, key_file=config.paths.key_file)
    try:
        state.choose_scanner(conn, identity)
    finally:
        conn.close()


def write_certificate(path: Path, days_left: float, cn: str = "kiosk-01") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days_left))
            .sign(key, hashes.SHA256()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


# --- the scanner the technician chose --------------------------------------------------

@pytest.fixture(scope="module")
def escl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One eSCL emulator, configured as airscan's entry e0; yields the SANE folder."""
    proc, url = start_demo_scanner("--adf-pages", "1", "--model", MODEL)
    try:
        folder = tmp_path_factory.mktemp("sane")
        write_sane_config(folder, backends=("airscan",), airscan_devices=[(MODEL, url)])
        yield folder
    finally:
        stop_process(proc)


def listed_emulator(config: Config) -> tuple[str, str, str, str]:
    seen: list[tuple[str, str, str, str]] = []

    def remember(_wanted: str, devices: object) -> str | None:
        seen.extend(devices)  # type: ignore[call-overload]
        return None

    doctor.check_scanner(with_overrides(config, scanner={"device": "none:x"}),
                         resolve=remember)
    return next(d for d in seen if d[0].endswith(MODEL))


def test_scanner_check_finds_the_chosen_scanner_by_identity(tmp_path, escl):
    config = device(tmp_path, scanner={"sane_config_dir": str(escl)})
    name, vendor, model, _type = listed_emulator(config)
    assert name == f"airscan:e0:{MODEL}"
    # Chosen when it was airscan's e3 (another airscan.conf order): the stable
    # identity still finds it under its name today.
    chosen = ScannerIdentity(vendor, model, backend="airscan", hint=f"airscan:{MODEL}")
    choose(config, chosen.to_string())
    check = cli._check_scanner(config)
    assert check.verdict is Verdict.OK, check
    assert f"found as {name}" in check.summary and "chosen scanner" in check.summary
    # Without the identity matching the worker uses, the same choice is not found:
    # the CLI's resolver is what makes the doctor agree with the worker.
    assert doctor.check_scanner(config).verdict is Verdict.FAIL


def test_scanner_check_fails_when_the_chosen_scanner_is_gone(tmp_path, escl):
    # scanner.device names the emulator, but the technician chose another scanner:
    # the worker opens the chosen one, so that is what the doctor must look for.
    config = device(tmp_path, scanner={"sane_config_dir": str(escl),
                                       "device": f"airscan:e0:{MODEL}"})
    assert cli._check_scanner(config).verdict is Verdict.OK
    choose(config, ScannerIdentity("Fujitsu", "fi-8170", "A1B2C3").to_string())
    check = cli._check_scanner(config)
    assert check.verdict is Verdict.FAIL, check
    assert "Fujitsu fi-8170 (A1B2C3) not found" in check.summary
    assert "technician panel" in check.next_step


# --- the device certificate ----------------------------------------------------------

def test_certificate_expiring_in_ten_days_warns_with_the_renewal_steps(tmp_path):
    cert = write_certificate(tmp_path / "device.crt", days_left=10)
    check = doctor.check_certificate(device(tmp_path, mqtt={"cert_file": str(cert)}))
    assert check.verdict is Verdict.WARN, check
    assert "expires in 10 day(s)" in check.summary
    assert "appliance provision renew" in check.next_step
    far = write_certificate(tmp_path / "far.crt", days_left=300)
    assert doctor.check_certificate(
        device(tmp_path, mqtt={"cert_file": str(far)})).verdict is Verdict.OK


def test_the_certificate_provision_installed_is_checked_even_if_not_configured(tmp_path):
    """install-cert puts it under tls/current beside the configuration file."""
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    generation = tmp_path / "tls" / "gen-0001"
    write_certificate(generation / "device.crt", days_left=10)
    (tmp_path / "tls" / "current").symlink_to("gen-0001")
    checks = by_name(doctor.run_checks(cfg, skip=["scanner", "broker", "units"]))
    assert checks["certificate"].verdict is Verdict.WARN, checks["certificate"]
    assert "tls/current/device.crt expires in 10 day(s)" in checks["certificate"].summary
    # Configured and provisioned are the same file: one line about it, not two.
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\ncert_file = '
                   f'"{tmp_path / "tls" / "current" / "device.crt"}"\n', encoding="utf-8")
    checks = doctor.run_checks(cfg, skip=["scanner", "broker", "units"])
    assert [c.name for c in checks].count("certificate") == 1


# --- the round kept for the panel and the heartbeat -----------------------------------

def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_checks_never_dial_the_broker_and_show_the_last_round(tmp_path):
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nhost = "127.0.0.1"\n'
                   f'port = {dead_port()}\n', encoding="utf-8")
    (tmp_path / "data").mkdir()  # made by the services on a device
    config = doctor.config_mod.load(cfg)
    before = by_name(doctor.local_checks(config))
    assert before["broker"].verdict is Verdict.SKIP
    assert before["broker"].summary == "not checked here"
    assert before["scanner"].summary == "not checked here"
    assert before["disk"].verdict is Verdict.OK and before["disk"].as_of is None

    # An earlier round listed the scanner; the hourly timer's rounds skip it.
    listed = Check("scanner", Verdict.OK, "found as airscan:e0:Office")
    doctor.save_report(config, [listed], now=time.time() - 7200)
    # The command, run as a technician runs it, keeps its round.
    done = subprocess.run([sys.executable, "-m", "appliance", "--config", str(cfg),
                           "doctor", "--json", "--skip", "scanner", "--skip", "models"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    printed = by_name([Check.from_dict(c) for c in json.loads(done.stdout)["checks"]])
    assert printed["broker"].verdict is Verdict.WARN and "unreachable" in printed[
        "broker"].summary
    after = by_name(doctor.local_checks(config))
    # The same record the command printed, stamped with the time of that run.
    assert after["broker"].verdict is Verdict.WARN
    assert after["broker"].summary == printed["broker"].summary
    assert after["broker"].next_step == printed["broker"].next_step
    assert after["broker"].as_of is not None
    assert after["schema"].as_of is not None  # a CLI-only check, carried along
    assert after["disk"].as_of is None  # local: looked at again now
    # Skipped in that round: the earlier round's line stays, with the earlier time.
    assert after["scanner"].summary == listed.summary
    assert after["scanner"].as_of is not None and after["broker"].as_of is not None
    assert after["broker"].as_of - after["scanner"].as_of > 7000
    assert doctor.worst(list(after.values())) is Verdict.WARN
    # A round that ran the scanner check replaces that line.
    doctor.save_report(config, [Check("scanner", Verdict.FAIL, "gone")], keep=["broker"])
    again = by_name(doctor.local_checks(config))
    assert again["scanner"].summary == "gone"
    assert again["broker"].summary == printed["broker"].summary
    assert "schema" not in again  # neither run nor kept: a CLI-only check is left out


def test_local_scanner_line_is_the_newer_of_the_worker_and_the_doctor(tmp_path):
    """The panel and the heartbeat never list the scanner: they show what the worker
    found when it last opened the chosen one, or the doctor's listing if newer."""
    config = device(tmp_path)
    choose(config, ScannerIdentity("Fujitsu", "fi-8170", "A1B2C3").to_string())
    assert by_name(doctor.local_checks(config))["scanner"].summary == "not checked here"
    conn = connect(config.paths.database, key_file=config.paths.key_file)
    try:
        state.set_scanner(conn, state.ScannerState.ERROR, "scanner.jammed")
    finally:
        conn.close()
    doctor.save_report(config, [Check("scanner", Verdict.OK, "listed an hour ago")],
                       now=time.time() - 3600)
    line = by_name(doctor.local_checks(config))["scanner"]
    assert line.verdict is Verdict.FAIL, line
    assert line.summary == ("Fujitsu fi-8170 (A1B2C3): the worker's last use failed "
                            "(scanner.jammed)")
    assert "test scan" in line.next_step and line.as_of is not None
    assert time.time() - line.as_of < 60
    # A doctor round after it (the technician fixed the paper path and ran it): newer.
    doctor.save_report(config, [Check("scanner", Verdict.OK, "found as airscan:e0:x")])
    line = by_name(doctor.local_checks(config))["scanner"]
    assert (line.verdict, line.summary) == (Verdict.OK, "found as airscan:e0:x")
