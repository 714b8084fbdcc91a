"""Red team 11 (issue 12): the central key file as parsed by central_key.parse (c3a1cb9)
and installed by `appliance provision central-key`. Keys and certificates are made by
OpenSSL's command line.

Pinned (strict xfail):
- the file the command replaces is read first, in every mode: a key file that sync
  refuses (exit 2, records wait) cannot be replaced by `provision central-key FILE`,
  the very step the doctor tells the technician to take ("install the central office's
  public key file again");
- a CA certificate of an algorithm cryptography does not know (SM2 here) is "a CA
  certificate whose key is not Ed25519", which the module says is passed over; it
  refuses the whole file (`cat central.crt ca.crt` stops sync);
- _PEM_BLOCK scans from every BEGIN line to the end of the file when no END of that
  label follows: quadratic, 10,000 stray BEGIN lines (280 KB) keep provisioning (and
  sync's start, and its re-read in the MQTT thread) busy for tens of seconds;
- a key block commented out line by line with '#' (the comment style the file itself
  is written with) is read as a broken block and refuses the whole file.
Held: every refusal of provisioning exits 1, says "nothing was changed" and leaves
the key file and the configuration byte for byte; odd files (nested markers, 10,000
copies of one key, 9 or 10,000 distinct keys, a private key hidden in a certificate
block) are a CentralKeyError or the right keys, quickly.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli import _resolve, build_parser
from appliance.system import central_key
from tests.helpers.central_keys import ed25519, openssl
from tests.helpers.sync_rig import make_config, write_config_file

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
KEY_NAME = "central-acks.pem"


def certificate(folder: Path, name: str, algorithm: str, *, ca: bool,
                key: Path | None = None) -> Path:
    """A self-signed certificate by OpenSSL (a new key of `algorithm` unless `key`)."""
    if key is None:
        key = folder / f"{name}.key"
        opts = ["-pkeyopt", "rsa_keygen_bits:2048"] if algorithm == "RSA" else (
            ["-pkeyopt", "ec_paramgen_curve:P-256"] if algorithm == "EC" else [])
        openssl("genpkey", "-algorithm", algorithm, *opts, "-out", str(key))
    out = folder / f"{name}.crt"
    ext = "basicConstraints=critical,CA:TRUE" if ca else "basicConstraints=critical,CA:FALSE"
    openssl("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "365",
            "-addext", ext, "-out", str(out))
    return out


def provision(config_file: Path, folder: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = build_parser().parse_args(["--config", str(config_file), "provision",
                                      "central-key", "--dir", str(folder), *argv])
    with contextlib.redirect_stdout(out):
        rc = _resolve(args.command.run)(args)
    return rc, out.getvalue()


def _installed(tmp_path: Path) -> tuple[Path, Path, str]:
    """A device with one key installed by provisioning: (config file, etc dir, key id)."""
    _key, pub, kid = ed25519(tmp_path / "keys", "office")
    config_file = write_config_file(tmp_path, make_config(tmp_path, 1, signed=False))
    etc = tmp_path / "etc"
    rc, said = provision(config_file, etc, str(pub))
    assert rc == 0 and kid in said, said
    return config_file, etc, kid


# --- the file being replaced is read first ------------------------------------------


def test_a_key_file_sync_refuses_can_be_replaced(tmp_path: Path) -> None:
    config_file, etc, _old = _installed(tmp_path)
    target = etc / KEY_NAME
    # The technician's hand edit: the office's TLS certificate (RSA) pasted after the key.
    rsa = certificate(tmp_path / "keys", "office-tls", "RSA", ca=False)
    target.write_bytes(target.read_bytes() + rsa.read_bytes())
    with pytest.raises(central_key.CentralKeyError):
        central_key.read(target)          # what sync and the doctor now say
    _key, new_pub, new_id = ed25519(tmp_path / "keys", "office-again")
    rc, said = provision(config_file, etc, str(new_pub))
    assert rc == 0, said
    assert [b.key_id for b in central_key.read(target)] == [new_id]


# --- what provisioning refuses, it leaves as it was ---------------------------------


def test_every_refusal_changes_nothing(tmp_path: Path) -> None:
    config_file, etc, kid = _installed(tmp_path)
    keys = tmp_path / "keys"
    target = etc / KEY_NAME
    installed, configured = target.read_bytes(), config_file.read_bytes()
    private, pub, _ = ed25519(keys, "other")
    ed_cert = certificate(keys, "central", "ed25519", ca=False, key=private)
    bad: dict[str, bytes] = {
        "an RSA certificate (not a CA)": certificate(keys, "rsa", "RSA", ca=False)
        .read_bytes(),
        "an EC certificate (not a CA)": certificate(keys, "ec", "EC", ca=False).read_bytes(),
        "a private key": private.read_bytes(),
        "a private key after a good key": pub.read_bytes() + private.read_bytes(),
        "a private key inside a certificate block": (
            b"-----BEGIN CERTIFICATE-----\n" + private.read_bytes()
            + b"-----END CERTIFICATE-----\n"),
        "nested BEGIN markers": (b"-----BEGIN PUBLIC KEY-----\n" + ed_cert.read_bytes()
                                 + b"-----END PUBLIC KEY-----\n"),
        "a certificate cut short": ed_cert.read_bytes()[:300]
        + b"\n-----END CERTIFICATE-----\n",
        "nothing": b"",
        "nine keys": b"".join(
            Ed25519PrivateKey.generate().public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            for _ in range(9)),
    }
    for what, data in bad.items():
        given = tmp_path / "given.pem"
        given.write_bytes(data)
        for argv in ((str(given),), ("--add", str(given))):
            rc, said = provision(config_file, etc, *argv)
            assert rc == 1 and "nothing was changed" in said, (what, argv, said)
            assert "Traceback" not in said, (what, said)
            assert target.read_bytes() == installed, what
            assert config_file.read_bytes() == configured, what
    rc, said = provision(config_file, etc, "--remove", "0123456789abcdef")
    assert rc == 1 and "nothing was changed" in said, said
    assert target.read_bytes() == installed and config_file.read_bytes() == configured
    assert [b.key_id for b in central_key.read(target)] == [kid]


# --- a CA of an algorithm cryptography does not know --------------------------------


def test_a_ca_of_an_unknown_algorithm_after_the_central_certificate_is_passed_over(
        tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    private, _pub, kid = ed25519(keys, "central")
    central = certificate(keys, "central", "ed25519", ca=False, key=private)
    try:
        sm2 = certificate(keys, "sm2-ca", "SM2", ca=True)
    except subprocess.CalledProcessError:
        pytest.skip("this OpenSSL makes no SM2 key")
    for other in ("RSA", "RSA-PSS", "EC", "ed448"):   # held: these CAs are passed over
        ca = certificate(keys, f"{other}-ca", other, ca=True)
        blocks = central_key.parse(central.read_bytes() + ca.read_bytes(), other)
        assert [b.key_id for b in blocks] == [kid], other
    blocks = central_key.parse(central.read_bytes() + sm2.read_bytes(), "sm2")
    assert [b.key_id for b in blocks] == [kid]


# --- stray BEGIN lines -----------------------------------------------------------------

PARSE = """
import sys, time
from pathlib import Path
from appliance.system import central_key
data = Path(sys.argv[1]).read_bytes()
t = time.perf_counter()
try:
    ids = [b.key_id for b in central_key.parse(data, sys.argv[1])]
except central_key.CentralKeyError as e:
    ids = ["refused: " + str(e)[:80]]
print(ids, round(time.perf_counter() - t, 2))
"""
STRAY = 10_000
LIMIT_SECONDS = 4.0


def test_stray_begin_lines_are_parsed_quickly(tmp_path: Path) -> None:
    _key, pub, kid = ed25519(tmp_path / "keys", "office")
    crafted = tmp_path / "crafted.pem"
    crafted.write_bytes(b"-----BEGIN CERTIFICATE-----\n" * STRAY + pub.read_bytes())
    assert crafted.stat().st_size < 300_000
    try:
        done = subprocess.run([sys.executable, "-c", PARSE, str(crafted)], cwd=REPO,
                              capture_output=True, text=True, timeout=LIMIT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"parse of a {crafted.stat().st_size} byte file still running after "
                    f"{LIMIT_SECONDS} s")
    assert done.returncode == 0, done.stderr[-800:]
    assert kid in done.stdout or "refused" in done.stdout, done.stdout


# --- a key commented out --------------------------------------------------------------


def test_a_key_commented_out_is_a_comment(tmp_path: Path) -> None:
    _k1, retired, _old = ed25519(tmp_path / "keys", "retired")
    _k2, current, new = ed25519(tmp_path / "keys", "current")
    commented = b"".join(b"# " + line + b"\n" for line in retired.read_bytes().splitlines())
    data = b"# retired 2026-11-27\n" + commented + b"# in use\n" + current.read_bytes()
    assert [b.key_id for b in central_key.parse(data, "central-acks.pem")] == [new]


# --- held: big and odd files ----------------------------------------------------------


def test_many_blocks_are_read_or_refused_quickly(tmp_path: Path) -> None:
    one = Ed25519PrivateKey.generate().public_key()
    pem = one.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    started = time.monotonic()
    same = central_key.parse(b"# a copy\n".join([pem] * 10_000), "copies")
    assert [b.key_id for b in same] == [central_key.key_id(one)]
    distinct = b"".join(
        Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        for _ in range(10_000))
    with pytest.raises(central_key.CentralKeyError, match="10000 central keys"):
        central_key.parse(distinct, "distinct")
    # Overlapping markers: a key inside another label's block, an END with no BEGIN.
    for data in (b"-----BEGIN X509 CRL-----\n" + pem + b"-----END X509 CRL-----\n",
                 b"-----END PUBLIC KEY-----\n" + pem[: len(pem) // 2],
                 b"-----BEGIN PUBLIC KEY-----\n" + pem):
        with pytest.raises(central_key.CentralKeyError):
            central_key.parse(data, "odd")
    assert time.monotonic() - started < 20
