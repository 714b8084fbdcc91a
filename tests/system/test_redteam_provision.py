"""Red team: `appliance provision` (tomledit, install-cert, renew) with inputs its authors
did not make. Certificates are made here with `cryptography`, never committed.

A refused step must leave every file under /etc/appliance byte-identical; an accepted
certificate must be one sync can use. Crashes between the steps of install-cert are
simulated by stopping the process at its N-th rename/unlink (what is on disk then is
what a SIGKILL there leaves, less the temporary file). A bug is a strict xfail.
"""

from __future__ import annotations

import datetime as dt
import getpass
import io
import os
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.cli import _resolve, build_parser
from appliance.provision import pki
from appliance.provision.tomledit import set_keys
from appliance.system import config as config_mod

pytestmark = pytest.mark.timeout(60)

AGENCY = "000.00.12.H42"
DEVICE = "kiosk-07"
NOW = dt.datetime.now(dt.UTC)


# --- a device under tmp_path, driven as the CLI drives it ---------------------------


class Device:
    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch, text: str | None = None) -> None:
        self.etc = tmp_path / "etc"
        self.etc.mkdir()
        self.config_path = self.etc / "appliance.toml"
        self.config_path.write_text(text if text is not None else (
            "# technician's note: keep me\n[device]\nid = \"kiosk-01\"\n\n"
            f"[paths]\ndata_dir = \"{tmp_path / 'data'}\"\n"), encoding="utf-8")
        self.tls = self.etc / "tls"
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        monkeypatch.delenv(config_mod.CONFIG_ENV, raising=False)

    def run(self, *argv: str) -> tuple[int, str]:
        self.capsys.readouterr()
        self.monkeypatch.setattr("sys.stdin", io.StringIO(""))
        args = build_parser().parse_args(["--config", str(self.config_path), "provision",
                                          argv[0], "--owner", getpass.getuser(), *argv[1:]])
        rc = _resolve(args.command.run)(args)
        return rc, self.capsys.readouterr().out

    def csr(self) -> bytes:
        return (self.tls / pki.CSR_NAME).read_bytes()

    def snapshot(self) -> dict[str, object]:
        """Every file, link and folder under etc/ except the step report."""
        out: dict[str, object] = {}
        for p in sorted(self.etc.rglob("*")):
            rel = str(p.relative_to(self.etc))
            if p.name == "provision-report.json":
                continue
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
        return out


@pytest.fixture
def device(tmp_path, capsys, monkeypatch) -> Device:
    d = Device(tmp_path, capsys, monkeypatch)
    assert d.run("identity", "--agency", AGENCY, "--device", DEVICE)[0] == 0
    assert d.run("key")[0] == 0
    return d


class Ca:
    def __init__(self, name: str = "BHXH red-team CA", key: object | None = None,
                 not_after: dt.datetime | None = None, issuer: Ca | None = None) -> None:
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        signer = issuer or self
        self.cert = (x509.CertificateBuilder().subject_name(self.name)
                     .issuer_name(signer.name)
                     .public_key(self.key.public_key())  # type: ignore[attr-defined]
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - dt.timedelta(days=400))
                     .not_valid_after(not_after or NOW + dt.timedelta(days=365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                    critical=True)
                     .sign(signer.key, hashes.SHA256()))  # type: ignore[arg-type]

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, public_key: object, *, cn: str = DEVICE,
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
             eku: list[x509.ObjectIdentifier] | None = None, ca: bool = False,
             san: str | None = None) -> x509.Certificate:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, AGENCY)]))
             .issuer_name(self.name).public_key(public_key)  # type: ignore[arg-type]
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before or NOW - dt.timedelta(minutes=5))
             .not_valid_after(not_after or NOW + dt.timedelta(days=90)))
        if eku is None:
            eku = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                critical=True)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]),
                                critical=False)
        return b.sign(self.key, hashes.SHA256())  # type: ignore[arg-type]


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def device_public_key(device: Device) -> object:
    return x509.load_pem_x509_csr(device.csr()).public_key()


def put(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def installed(device: Device) -> bool:
    current = pki.linked(device.tls, pki.CURRENT)
    return current is not None and (current / pki.CERT_NAME).exists()


def working_pair(device: Device) -> bool:
    """tls/current holds a key and a certificate for that key, and the config, when it
    names TLS files, names ones that exist."""
    current = pki.linked(device.tls, pki.CURRENT)
    if current is None:
        return False
    try:
        cert = pki.load_pem_certificates(current / pki.CERT_NAME, "certificate")[0]
        key = pki.load_key(current)
    except Exception:  # noqa: BLE001 - any failure means no working pair
        return False
    if not pki.key_matches(cert, key) or not (current / pki.CA_NAME).exists():
        return False
    m = config_mod.load(device.config_path).mqtt
    return all(Path(f).exists() for f in (m.cert_file, m.key_file, m.ca_file) if f)


# --- install-cert: what must be refused, with nothing changed ------------------------


def _refusals(device: Device, tmp_path: Path, ca: Ca) -> dict[str, tuple[bytes, bytes]]:
    pub = device_public_key(device)
    other_key = ec.generate_private_key(ec.SECP256R1())
    same_name = Ca()  # another CA with the same name
    other = Ca("Another CA")
    leaf = ca.sign(pub)
    return {
        "expired": (pem(ca.sign(pub, not_before=NOW - dt.timedelta(days=60),
                                not_after=NOW - dt.timedelta(days=1))), ca.pem()),
        "not yet valid": (pem(ca.sign(pub, not_before=NOW + dt.timedelta(days=2))), ca.pem()),
        "another key": (pem(ca.sign(other_key.public_key())), ca.pem()),
        "another CA": (pem(other.sign(pub)), ca.pem()),
        "another CA, same name": (pem(same_name.sign(pub)), ca.pem()),
        "another device's CN": (pem(ca.sign(pub, cn="kiosk-08")), ca.pem()),
        "the CA instead of the leaf": (ca.pem(), ca.pem()),
        "CA first, then the leaf": (pem(ca.cert, leaf), ca.pem()),
        "DER": (leaf.public_bytes(serialization.Encoding.DER), ca.pem()),
        "garbage": (os.urandom(2048), ca.pem()),
        "empty": (b"", ca.pem()),
        "a key instead of a certificate": (other_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), ca.pem()),
        "CA file garbage": (pem(leaf), b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                       b"-----END CERTIFICATE-----\n"),
        "CA file DER": (pem(leaf), ca.cert.public_bytes(serialization.Encoding.DER)),
        "CA file is the leaf": (pem(leaf), pem(leaf)),
    }


def test_wrong_certificates_are_refused_and_nothing_changes(device, tmp_path):
    ca = Ca()
    cases = _refusals(device, tmp_path, ca)
    for first_installed in (False, True):
        if first_installed:  # the same attacks on a device that already has one
            good = put(tmp_path, "good.crt", pem(ca.sign(device_public_key(device))))
            assert device.run("install-cert", good, "--ca", put(tmp_path, "ca.crt",
                                                                ca.pem()))[0] == 0
            assert device.run("renew")[0] == 0
            cases = _refusals(device, tmp_path, ca)
        before = device.snapshot()
        for what, (cert, ca_pem) in cases.items():
            rc, out = device.run("install-cert", put(tmp_path, "x.crt", cert),
                                 "--ca", put(tmp_path, "x-ca.crt", ca_pem))
            assert rc == 1 and out.startswith("fail"), (what, out)
            assert "nothing was changed" in out, (what, out)
            assert device.snapshot() == before, what


def test_correct_variants_are_accepted(device, tmp_path):
    """RSA and P-384 CAs, the leaf with its CA appended (a "fullchain" file), a SAN."""
    for ca in (Ca("RSA CA", rsa.generate_private_key(65537, 2048)),
               Ca("P-384 CA", ec.generate_private_key(ec.SECP384R1()))):
        leaf = ca.sign(device_public_key(device), san="kiosk-07.example")
        for cert in (pem(leaf), pem(leaf, ca.cert)):
            rc, out = device.run("install-cert", put(tmp_path, "d.crt", cert),
                                 "--ca", put(tmp_path, "ca.crt", ca.pem()))
            assert rc == 0, out
            assert working_pair(device)
        assert device.run("renew")[0] == 0


def test_a_certificate_without_client_auth_is_refused(device, tmp_path):
    ca = Ca()
    before = device.snapshot()
    cert = pem(ca.sign(device_public_key(device), eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    rc, out = device.run("install-cert", put(tmp_path, "d.crt", cert),
                         "--ca", put(tmp_path, "ca.crt", ca.pem()))
    assert rc == 1 and device.snapshot() == before, out


def test_an_expired_ca_is_refused(device, tmp_path):
    ca = Ca(not_after=NOW - dt.timedelta(days=1))
    before = device.snapshot()
    cert = pem(ca.sign(device_public_key(device)))
    rc, out = device.run("install-cert", put(tmp_path, "d.crt", cert),
                         "--ca", put(tmp_path, "ca.crt", ca.pem()))
    assert rc == 1 and device.snapshot() == before, out


def test_a_chain_through_an_intermediate_is_accepted(device, tmp_path):
    root = Ca("Root CA")
    intermediate = Ca("Issuing CA", issuer=root)
    leaf = intermediate.sign(device_public_key(device))
    rc, out = device.run("install-cert", put(tmp_path, "d.crt", pem(leaf, intermediate.cert)),
                         "--ca", put(tmp_path, "ca.crt", root.pem()))
    assert rc == 0, out
    assert working_pair(device)


def test_an_intermediate_not_signed_by_the_root_is_never_accepted(device, tmp_path):
    root = Ca("Root CA")
    rogue = Ca("Issuing CA")  # same name as a real intermediate would have, self-made
    leaf = rogue.sign(device_public_key(device))
    before = device.snapshot()
    rc, out = device.run("install-cert", put(tmp_path, "d.crt", pem(leaf, rogue.cert)),
                         "--ca", put(tmp_path, "ca.crt", root.pem()))
    assert rc == 1 and device.snapshot() == before, out


# --- a crash between the steps of install-cert --------------------------------------


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no step's handler turns it into a verdict."""


def _kill_after(monkeypatch: pytest.MonkeyPatch, n: int) -> list[str]:
    """Raise Killed at the n-th rename, unlink or rmdir (0-based); returns the log."""
    done: list[str] = []
    real = {name: getattr(os, name) for name in ("replace", "unlink", "rmdir")}

    def wrap(name: str):  # noqa: ANN202
        def op(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            path = str(args[1] if name == "replace" else args[0])
            if "/etc/" in path and ".tmp-" not in path:
                if len(done) == n:
                    raise Killed(f"{name} {path}")
                done.append(f"{name} {path}")
            return real[name](*args, **kwargs)
        return op

    for name in real:
        monkeypatch.setattr(os, name, wrap(name))
    return done


@pytest.mark.parametrize("renewal", [False, True], ids=["first", "renewal"])
def test_a_kill_at_any_point_of_install_cert_leaves_a_working_pair(tmp_path, capsys,
                                                                   monkeypatch, renewal):
    ca = Ca()
    for n in range(40):
        root = tmp_path / f"n{n}"
        root.mkdir()
        with monkeypatch.context() as m:
            device = Device(root, capsys, m)
            assert device.run("identity", "--agency", AGENCY, "--device", DEVICE)[0] == 0
            assert device.run("key")[0] == 0
            ca_file = put(root, "ca.crt", ca.pem())
            if renewal:
                first = put(root, "first.crt", pem(ca.sign(device_public_key(device))))
                assert device.run("install-cert", first, "--ca", ca_file)[0] == 0
                assert device.run("renew")[0] == 0
            cert = put(root, "d.crt", pem(ca.sign(device_public_key(device))))
            done = _kill_after(m, n)
            try:
                device.run("install-cert", cert, "--ca", ca_file)
                finished = True
            except Killed:
                finished = False
        # After the "reboot": the old pair (renewal) or none yet (first), never a mix.
        if renewal or finished:
            assert working_pair(device), (n, done)
        # And running the step again completes it.
        rc, out = device.run("install-cert", cert, "--ca", ca_file)
        assert rc == 0 and working_pair(device), (n, done, out)
        config = config_mod.load(device.config_path)
        assert config.mqtt.tls and Path(config.mqtt.cert_file).read_bytes() == Path(
            cert).read_bytes()
        if finished:
            # cert, CA, the swap, the config, the report (+ pending link, old key files)
            assert n >= (9 if renewal else 5), done
            break
    else:
        pytest.fail("install-cert never finished in 40 file operations")


# --- tomledit: round trips through an independent parser -------------------------------


STRANGE_VALUES = ['a"b', "back\\slash", "line\nbreak", "tab\there", "nul\x00x", "del\x7f",
                  "Bảo hiểm xã hội", "Bảo hiểm xã hội".encode().decode(),  # NFC
                  __import__("unicodedata").normalize("NFD", "Lê Thị Hồng"), "emoji 🧾",
                  "'''", '"""', "# not a comment", "[mqtt]", "key = 1", "\\u0041", ""]


@pytest.mark.parametrize("value", STRANGE_VALUES)
def test_a_set_string_reads_back_exactly(value):
    text = "# keep me\n[device]\nid = \"kiosk-01\" # and me\n\n[mqtt]\nhost = \"x\"\n"
    for target in (("device", "agency_name"), ("device", "id"), ("scanner", "device")):
        new = set_keys(text, {target: value})
        data = tomllib.loads(new)
        assert data[target[0]][target[1]] == value
        assert "# keep me" in new and "# and me" in new or target == ("device", "id")
        # Unrelated keys untouched.
        assert data["mqtt"]["host"] == "x"


def test_numbers_and_booleans_round_trip():
    new = set_keys("[mqtt]\nport = 1883\n", {("mqtt", "port"): 8883, ("mqtt", "tls"): True,
                                              ("mqtt", "ack_timeout_seconds"): 2.5})
    assert tomllib.loads(new)["mqtt"] == {"port": 8883, "tls": True,
                                          "ack_timeout_seconds": 2.5}


def test_crlf_file_keeps_loading_after_an_edit():
    new = set_keys("[web]\r\nthreads = 2\r\n[mqtt]\r\nport = 1\r\n", {("mqtt", "port"): 2})
    assert tomllib.loads(new) == {"web": {"threads": 2}, "mqtt": {"port": 2}}


def test_a_spaced_table_header_is_not_edited_as_the_table_above():
    text = ('[mqtt]\nhost = "broker"\n\n[ paths ]\n'
            'key_file = "/etc/appliance/appliance.key"\n')
    new = set_keys(text, {("mqtt", "key_file"): "/etc/appliance/tls/current/device.key"})
    data = tomllib.loads(new)
    assert data["paths"]["key_file"] == "/etc/appliance/appliance.key"
    assert data["mqtt"]["key_file"] == "/etc/appliance/tls/current/device.key"


# Valid TOML that `appliance config check` accepts, which set_keys turns into invalid
# TOML (the step then fails "not valid TOML", blaming a file that was valid).
PORT = (("mqtt", "port"), 8883)
NAME = (("device", "agency_name"), "BHXH")
VALID_BUT_UNEDITABLE = {
    "U+2028 in a comment": ("# pasted note\u2028second half\n[mqtt]\nport = 1883\n", PORT),
    "U+0085 (NEL) in a value": ('[device]\nagency_name = "A\x85B"\n[mqtt]\nport = 1883\n',
                                PORT),
    "multi-line string value": ('[device]\nagency_name = """Bảo hiểm\nxã hội"""\n'
                                "[mqtt]\nport = 1883\n", NAME),
    "dotted keys": ("mqtt.port = 1883\n", PORT),
    "inline table": ("mqtt = { port = 1883 }\n", PORT),
    "quoted key": ('[mqtt]\n"port" = 1883\n', PORT),
}


@pytest.mark.parametrize(("text", "edit"), VALID_BUT_UNEDITABLE.values(),
                         ids=VALID_BUT_UNEDITABLE)
def test_valid_toml_stays_valid_after_an_edit(text, edit):
    (table, key), value = edit
    config_mod.from_mapping(tomllib.loads(text))  # a valid appliance.toml
    data = tomllib.loads(set_keys(text, {(table, key): value}))
    assert data[table][key] == value
    expected = tomllib.loads(text)
    expected[table][key] = value
    assert data == expected


def test_a_name_pasted_with_a_line_separator_does_not_break_later_steps(device):
    rc, out = device.run("identity", "--agency", AGENCY, "--device", DEVICE,
                         "--name", "Bảo hiểm\u2028quận Ba Đình")
    assert rc == 0, out
    config_mod.load(device.config_path)
    rc, out = device.run("broker", "--host", "127.0.0.1", "--port", "1")
    assert "not valid TOML" not in out, out
    assert config_mod.load(device.config_path).mqtt.host == "127.0.0.1"


def test_a_name_that_is_not_utf8_is_a_fail_line(device):
    before = device.snapshot()
    name = os.fsdecode(b"B\xe1o hi\xeam")  # a Latin-1/TCVN terminal
    rc, out = device.run("identity", "--agency", AGENCY, "--device", DEVICE, "--name", name)
    assert rc == 1 and out.startswith("fail")
    assert device.snapshot() == before


def test_identity_on_a_non_utf8_config_is_a_fail_line(tmp_path, capsys, monkeypatch):
    device = Device(tmp_path, capsys, monkeypatch, text="")
    device.config_path.write_bytes(b'[device]\nagency_name = "B\xe1o"\n')
    before = device.snapshot()
    rc, out = device.run("identity", "--agency", AGENCY, "--device", DEVICE)
    assert rc == 1 and out.startswith("fail")
    assert device.snapshot() == before


def test_key_step_on_a_non_utf8_config_is_a_fail_line(tmp_path, capsys, monkeypatch):
    device = Device(tmp_path, capsys, monkeypatch, text="")
    device.config_path.write_bytes(b'[device]\nagency_name = "B\xe1o"\n')
    rc, out = device.run("key")
    assert rc == 1 and "not valid TOML" in out
    assert not device.tls.exists()


def test_a_refused_edit_leaves_the_file_byte_identical(device):
    before = device.config_path.read_bytes()
    rc, out = device.run("identity", "--agency", AGENCY, "--device", "kiosk_07")
    assert rc == 1 and device.config_path.read_bytes() == before
    rc, out = device.run("broker", "--port", "70000")
    assert rc == 1 and "mqtt.port" in out
    assert device.config_path.read_bytes() == before
