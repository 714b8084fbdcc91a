"""`appliance provision` end to end into a temporary root, with a test CA made now.

Everything is real: the key is made by the step under test, the CSR is signed by a CA
generated here with `cryptography`, the broker is mosquitto with
`require_certificate true`, and the records in the queue are genuine signed records.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.cli import _resolve, build_parser
from appliance.provision import pki
from appliance.system import config as config_mod
from tests.helpers.mosquitto import TlsFiles
from tests.helpers.sync_rig import all_delivered, brokers, enqueue, services, wait_for

pytestmark = pytest.mark.timeout(120)
__all__ = ["brokers", "services"]  # fixtures

AGENCY = "000.00.12.H42"
DEVICE = "kiosk-07"
NOW = dt.datetime.now(dt.UTC)


# --- a test CA, made at test time ----------------------------------------------------


@dataclass
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path

    def sign(self, csr_pem: bytes, *, cn: str | None = None,
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
             public_key: object | None = None, server: bool = False) -> bytes:
        csr = x509.load_pem_x509_csr(csr_pem)
        subject = (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn
                   else csr.subject)
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(public_key or csr.public_key())  # type: ignore[arg-type]
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or NOW - dt.timedelta(minutes=5))
                   .not_valid_after(not_after or NOW + dt.timedelta(days=90)))
        if server:
            import ipaddress

            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def make_ca(folder: Path, name: str = "BHXH test CA") -> Ca:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(key, cert, path)


def csr_of(key: ec.EllipticCurvePrivateKey, cn: str) -> bytes:
    return pki.make_csr(key, cn, AGENCY)


def server_files(ca: Ca, folder: Path) -> TlsFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (folder / "server.crt").write_bytes(ca.sign(csr_of(key, "localhost"), cn="localhost",
                                                server=True))
    return TlsFiles(ca.path, folder / "server.crt", folder / "server.key")


# --- running the steps as the CLI does ---------------------------------------------


class Root:
    """A temporary device: /etc/appliance and /var/lib/appliance under tmp_path."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.etc = tmp_path / "etc"
        self.etc.mkdir()
        self.config_path = self.etc / "appliance.toml"
        self.config_path.write_text(
            "# The office's appliance (a technician's comment that must survive)\n"
            "[device]\nid = \"kiosk-01\"\n\n"
            f"[paths]\ndata_dir = \"{tmp_path / 'data'}\"\n", encoding="utf-8")
        self.tls = self.etc / "tls"
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        import getpass

        self.owner = getpass.getuser()

    def run(self, *argv: str, stdin: str = "") -> tuple[int, str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        args = build_parser().parse_args(["--config", str(self.config_path), "provision",
                                          argv[0], "--owner", self.owner, *argv[1:]])
        rc = _resolve(args.command.run)(args)
        out = self.capsys.readouterr().out
        return rc, out

    def config(self) -> config_mod.Config:
        return config_mod.load(self.config_path)

    @property
    def csr(self) -> bytes:
        return (self.tls / pki.CSR_NAME).read_bytes()

    def key(self, link: str = pki.CURRENT) -> ec.EllipticCurvePrivateKey:
        generation = pki.linked(self.tls, link)
        assert generation is not None, f"no {link} key"
        return pki.load_key(generation)


@pytest.fixture
def root(tmp_path: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Root:
    return Root(tmp_path, capsys, monkeypatch)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def outbox_rows(config: config_mod.Config) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(config.paths.database)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT o.record_id, o.state, o.attempts, r.* FROM outbox o "
            "JOIN records r USING (record_id) ORDER BY o.id")]
    finally:
        conn.close()


def identity_and_key(root: Root) -> None:
    assert root.run("identity", "--agency", AGENCY, "--device", DEVICE)[0] == 0
    assert root.run("key")[0] == 0


# --- the tests ---------------------------------------------------------------------


def test_identity_is_validated_and_kept_with_the_comments(root):
    rc, out = root.run("identity", "--agency", "12.H42", "--device", DEVICE)
    assert rc == 1 and "fail" in out and "QCVN 102:2016" in out
    rc, out = root.run("identity", "--agency", AGENCY, "--device", "Kiosk 7")
    assert rc == 1 and "lower-case" in out
    assert root.config().device.id == "kiosk-01"  # nothing written by a refused step
    rc, out = root.run("identity", "--agency", AGENCY, "--device", DEVICE)
    assert rc == 0 and out.startswith("ok")
    text = root.config_path.read_text(encoding="utf-8")
    assert "a technician's comment that must survive" in text
    assert (root.config().device.id, root.config().device.agency_code) == (DEVICE, AGENCY)
    assert root.run("identity", "--agency", AGENCY, "--device", DEVICE)[0] == 0
    assert root.config_path.read_text(encoding="utf-8") == text  # re-run: harmless


def test_key_is_made_once_0600_and_its_csr_names_the_device(root):
    identity_and_key(root)
    generation = pki.linked(root.tls, pki.PENDING)
    key_file = generation / pki.KEY_NAME
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = key_file.read_bytes()
    csr = x509.load_pem_x509_csr(root.csr)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEVICE
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == AGENCY
    assert b"PRIVATE" not in root.csr
    rc, out = root.run("key")
    assert rc == 0 and "key kept" in out
    assert pki.linked(root.tls, pki.PENDING) == generation
    assert key_file.read_bytes() == first
    rc, _ = root.run("key", "--rotate")
    assert rc == 0 and pki.linked(root.tls, pki.PENDING) != generation
    # A new identity before the certificate came back: the waiting CSR follows it.
    rc, out = root.run("identity", "--agency", AGENCY, "--device", "kiosk-08")
    assert rc == 0 and out.startswith("warn") and "CSR was rewritten" in out
    csr = x509.load_pem_x509_csr(root.csr)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kiosk-08"


def test_wrong_certificates_are_refused_with_a_clear_message(root, tmp_path):
    identity_and_key(root)
    ca = make_ca(tmp_path / "ca")
    impostor = make_ca(tmp_path / "impostor")  # same name, another key
    other_key = ec.generate_private_key(ec.SECP256R1())
    pending_key = root.key(pki.PENDING)
    cases = {
        "not for this device's key": ca.sign(csr_of(other_key, DEVICE)),
        "does not chain to the CA": impostor.sign(root.csr),
        "expired on": ca.sign(root.csr, not_before=NOW - dt.timedelta(days=3),
                              not_after=NOW - dt.timedelta(days=1)),
        "names 'kiosk-99'": ca.sign(root.csr, cn="kiosk-99"),
    }
    for expected, pem in cases.items():
        rc, out = root.run("install-cert", str(write(tmp_path / "bad.crt", pem)),
                           "--ca", str(ca.path))
        assert rc == 1 and expected in out, out
        assert "nothing was changed" in out
        assert pki.linked(root.tls, pki.CURRENT) is None
        assert not root.config().mqtt.tls
    assert pki.key_matches(x509.load_pem_x509_certificate(cases["expired on"]), pending_key)
    rc, out = root.run("install-cert", str(write(tmp_path / "ok.crt", ca.sign(root.csr))),
                       "--ca", str(impostor.path))
    assert rc == 1 and "does not chain" in out


def test_provisioning_ends_in_a_mutual_tls_connection(root, tmp_path, brokers):
    identity_and_key(root)
    ca = make_ca(tmp_path / "ca")
    cert = write(tmp_path / "device.crt", ca.sign(root.csr))
    rc, out = root.run("install-cert", str(cert), "--ca", str(ca.path))
    assert rc == 0, out
    config = root.config()
    assert config.mqtt.tls and config.mqtt.cert_file.endswith("current/device.crt")
    assert Path(config.mqtt.key_file).resolve().stat().st_mode & 0o777 == 0o600
    before = sorted(p.name for p in root.tls.rglob("*"))
    assert root.run("install-cert", str(cert), "--ca", str(ca.path))[0] == 0  # re-run
    assert sorted(p.name for p in root.tls.rglob("*")) == before
    assert root.run("key")[0] == 0  # re-run after install: the key stays
    assert root.key().private_numbers() == pki.load_key(
        Path(config.mqtt.key_file).parent).private_numbers()

    rc, out = root.run("broker", "--host", "127.0.0.1", "--port", "1")
    assert rc == 1 and "127.0.0.1:1: refused" in out and "-> check --port" in out
    broker = brokers.start(tls=server_files(ca, tmp_path / "ca"))
    rc, out = root.run("broker", "--host", "127.0.0.1", "--port", str(broker.port))
    assert rc == 0 and "mutual TLS" in out, out + broker.log()
    assert root.run("broker")[0] == 0  # re-run from the saved host and port
    # A broker that trusts another CA for its clients refuses this device, and says so.
    other = make_ca(tmp_path / "other-ca", "another office's CA")
    files = server_files(ca, tmp_path / "ca")
    strict = brokers.start(tls=TlsFiles(other.path, files.cert_file, files.key_file))
    rc, out = root.run("broker", "--port", str(strict.port))
    assert rc == 1 and "tls" in out and "refused this device's certificate" in out, out
    assert root.run("broker", "--port", str(broker.port))[0] == 0
    assert DEVICE in broker.log()  # the broker saw this device's certificate

    rc, out = root.run("models")
    assert rc == 0, out
    bad_models = tmp_path / "models"
    bad_models.mkdir()
    (bad_models / "manifest.json").write_text(json.dumps({"models": [
        {"name": "x", "role": "detector", "file": "x.onnx", "sha256": "0" * 64}]}))
    (bad_models / "x.onnx").write_bytes(b"tampered")
    rc, out = root.run("models", "--models-dir", str(bad_models))
    assert rc == 1 and "reinstall the models" in out

    assert root.run("officer", "add", "Nguyễn Văn An", "--pin-stdin", stdin="4321\n")[0] == 0
    rc, out = root.run("officer", "add", "Nguyễn Văn An", "--pin-stdin", stdin="4321\n")
    assert rc == 0 and "already enrolled" in out
    rc, out = root.run("officer", "add", "Trần Thị Bình", "--pin-stdin", stdin="4321\n")
    assert rc == 1 and "already used by another officer" in out
    rc, out = root.run("officer", "add", "Trần Thị Bình", "--pin-stdin", stdin="12\n")
    assert rc == 1 and "4-12 digits" in out
    assert root.run("officer", "add", "Trần Thị Bình", "--pin-stdin", stdin="8765\n")[0] == 0
    stored = sqlite3.connect(config.paths.database).execute(
        "SELECT group_concat(pin_hash) FROM officers").fetchone()[0]
    assert "4321" not in stored and "8765" not in stored
    assert stored.count("scrypt-keyed$") == 2  # keyed with the installation key
    assert root.run("models")[0] == 0

    rc, out = root.run("report", "--json")
    report = {c["name"]: c for c in json.loads(out)["checks"]}
    for step in ("identity", "key", "certificate", "models", "broker", "officers"):
        assert report[step]["verdict"] == "ok", report[step]
    assert report["scanner"]["verdict"] == "fail"
    assert "appliance provision scanner" in report["scanner"]["next_step"]
    assert rc == 1
    rc, out = root.run("report")
    assert "verdict: FAIL" in out and "-> `appliance provision scanner`" in out


def test_renewal_swaps_the_certificate_and_keeps_the_queue(root, tmp_path, brokers,
                                                           services):
    from appliance.central.receiver import run_receiver
    from appliance.sync.publisher import run_publisher

    identity_and_key(root)
    ca = make_ca(tmp_path / "ca")
    assert root.run("install-cert", str(write(tmp_path / "1.crt", ca.sign(root.csr))),
                    "--ca", str(ca.path))[0] == 0
    broker = brokers.start(tls=server_files(ca, tmp_path / "ca"))
    assert root.run("broker", "--host", "127.0.0.1", "--port", str(broker.port))[0] == 0
    config = root.config()
    records = enqueue(config, 3)
    queued = outbox_rows(config)
    old_key = root.key().private_numbers()
    old_cert = Path(config.mqtt.cert_file).read_bytes()

    rc, out = root.run("renew")
    assert rc == 0 and "stays in use" in out
    assert Path(config.mqtt.cert_file).read_bytes() == old_cert  # still the one in use
    assert root.key().private_numbers() == old_key
    pending_csr = root.csr
    assert root.run("renew")[0] == 0 and root.csr == pending_csr  # re-run keeps it
    assert root.run("broker")[0] == 0  # the old certificate still connects

    renewed = write(tmp_path / "2.crt", ca.sign(root.csr))
    rc, out = root.run("install-cert", str(renewed), "--ca", str(ca.path))
    assert rc == 0 and "renewed certificate installed" in out, out
    assert root.config().mqtt == config.mqtt  # same paths: the link moved underneath
    assert Path(config.mqtt.cert_file).read_bytes() == renewed.read_bytes()
    assert root.key().private_numbers() != old_key
    assert pki.linked(root.tls, pki.PENDING) is None
    assert len(list(root.tls.glob("gen-*"))) == 1  # the old key is gone from the disk
    assert outbox_rows(config) == queued  # the queue untouched
    assert root.run("broker")[0] == 0
    rc, out = root.run("report", "--json")
    assert {c["name"]: c["verdict"] for c in json.loads(out)["checks"]}["renewal"] == "ok"

    # The publisher may publish before the receiver has subscribed: a 2 s ack timeout
    # (as in tests/helpers/sync_rig.make_config) re-sends them then, not after 10 s.
    central = config_mod.with_overrides(config, central={
        "database": str(tmp_path / "central" / "central.sqlite3")},
        mqtt={"ack_timeout_seconds": 2.0})
    services(run_receiver, central)
    services(run_publisher, central)
    wait_for(lambda: all_delivered(config, records), 30, "the queued records delivered")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a service user needs root")
def test_the_service_user_gets_its_key_and_keeps_the_configuration(root, tmp_path):
    import grp
    import pwd

    service = pwd.getpwnam("nobody")  # stands in for `appliance`
    os.chown(root.config_path, 0, service.pw_gid)
    root.config_path.chmod(0o640)
    root.owner = "nobody"
    identity_and_key(root)
    generation = pki.linked(root.tls, pki.PENDING)
    key = (generation / pki.KEY_NAME).stat()
    assert (key.st_uid, key.st_gid, key.st_mode & 0o777) == (service.pw_uid,
                                                              service.pw_gid, 0o600)
    for folder in (root.tls, generation):
        st = folder.stat()
        assert (st.st_uid, grp.getgrgid(st.st_gid).gr_gid, st.st_mode & 0o777) == (
            0, service.pw_gid, 0o750), folder
    cfg = root.config_path.stat()  # rewritten by identity: still readable by the services
    assert (cfg.st_uid, cfg.st_gid, cfg.st_mode & 0o777) == (0, service.pw_gid, 0o640)
    rc, out = root.run("key", "--owner", "no-such-user", "--rotate")
    assert rc == 1 and "service user 'no-such-user' does not exist" in out


def test_scanner_step_tests_the_demo_scanner_and_names_a_missing_one(root, tmp_path):
    from appliance.scanner.sane_env import write_sane_config
    from tests.scanner.demo_scanner import start_demo_scanner, stop_process

    proc, url = start_demo_scanner()
    try:
        write_sane_config(tmp_path / "sane", airscan_url=url)
        root.config_path.write_text(root.config_path.read_text(encoding="utf-8")
                                    + f"\n[scanner]\nsane_config_dir = \"{tmp_path / 'sane'}\"\n",
                                    encoding="utf-8")
        rc, out = root.run("scanner")
        assert rc == 0 and "BHXH Demo Scanner: 1 page(s) scanned" in out, out
        rc, out = root.run("scanner", "--device", "airscan:e0:No Such Scanner")
        assert rc == 1 and "scanner test failed" in out and "scanner list" in out, out
        assert root.config().scanner.device == ""  # a device that failed is not chosen
    finally:
        stop_process(proc)


def test_an_officer_pin_may_not_be_the_shared_officer_or_technician_pin(root):
    """The keypad would open the role with it and name nobody (the shared officer
    PIN), or the officer would hold the technician's key: enrolment refuses both."""
    with root.config_path.open("a", encoding="utf-8") as f:
        f.write('\n[web]\nofficer_pin = "2468"\ntechnician_pin = "13579"\n')
    for shared in ("2468", "13579"):
        rc, out = root.run("officer", "add", "Nguyễn Văn An", "--pin-stdin",
                           stdin=f"{shared}\n")
        assert rc == 1 and "shared officer or technician PIN" in out, out
    rc, out = root.run("officer", "add", "Nguyễn Văn An", "--pin-stdin", stdin="4321\n")
    assert rc == 0 and "1 officer(s) enrolled" in out, out


def test_a_key_is_never_written_through_a_leftover_link_or_wider_file(tmp_path):
    """The temporary name a key is written under may be left by a killed run, or be a
    link someone put there: the key goes into a new 0600 file, never through either."""
    import os

    folder = tmp_path / "gen"
    folder.mkdir()
    outside = tmp_path / "outside.pem"
    outside.write_bytes(b"")
    outside.chmod(0o644)
    leftover = folder / f".{pki.KEY_NAME}.tmp-{os.getpid()}"
    leftover.symlink_to(outside)
    pki.generate_key(folder, None)
    assert outside.read_bytes() == b""  # nothing written through the link
    key_file = folder / pki.KEY_NAME
    assert not key_file.is_symlink() and key_file.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in key_file.read_bytes() and not leftover.exists()
