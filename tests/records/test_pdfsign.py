"""The officer's PAdES signature from each key source: PEM, PKCS#12 and a PKCS#11
token (SoftHSM, Debian's softhsm2), verified with pyhanko's validator.

Keys and certificates are made in the test's tmp_path and never committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from appliance.imaging.pdfa import DocInfo, MarkBand, PdfPage, TextLine, assemble_pdfa
from appliance.records import pdfsign

OFFICER = "Trần Thị Hồng Nhung"
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


@pytest.fixture(scope="module")
def unsigned():
    page = Image.new("RGB", (827, 1169), "white")
    built = assemble_pdfa([PdfPage(page, 100, [TextLine("HỌ TÊN: ĐỖ GIA AN", (80, 80, 400, 110))])],
                          DocInfo("Giấy tờ", OFFICER),
                          band=MarkBand(["BẢN ĐIỆN TỬ CHUYỂN ĐỔI TỪ VĂN BẢN GIẤY"], "BHXHSH|1|x"))
    return built


@pytest.fixture(scope="module")
def device_key(tmp_path_factory) -> pdfsign.KeySpec:
    return pdfsign.ensure_device_key(tmp_path_factory.mktemp("keys"), "kiosk-01 000.00.12.H42",
                                     "Bảo hiểm xã hội quận Ba Đình")


def _sign(spec: pdfsign.KeySpec, built) -> bytes:
    when = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    with pdfsign.open_signer(spec) as signer:
        return pdfsign.sign_pdf(built.pdf, signer, box=built.signature_box, officer=OFFICER,
                                when=when)


def _assert_valid(pdf: bytes, cert: Path) -> None:
    check = pdfsign.verify_pdf(pdf, [cert.read_bytes()])
    assert check.intact and check.valid and check.covers_whole_file, check.summary
    assert check.signer == OFFICER
    assert check.signed_at == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    broken = bytearray(pdf)
    broken[len(pdf) // 2] ^= 0x20
    assert not pdfsign.verify_pdf(bytes(broken), [cert.read_bytes()]).intact


def test_device_key_is_made_once_and_kept_private(device_key):
    key = Path(device_key.signing_key)
    assert key.stat().st_mode & 0o077 == 0
    again = pdfsign.ensure_device_key(key.parent, "other", "other")
    assert again == device_key and key.read_bytes() == Path(again.signing_key).read_bytes()
    assert device_key.source == "device"


def test_pem_key_signs(device_key, unsigned):
    _assert_valid(_sign(device_key, unsigned), Path(device_key.signing_cert))


def test_pkcs12_key_signs(device_key, unsigned, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(Path(device_key.signing_key).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(device_key.signing_cert).read_bytes())
    p12 = tmp_path / "officer.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"officer", key, cert, None, serialization.BestAvailableEncryption(b"mat-khau")))
    spec = pdfsign.KeySpec(signing_key=str(p12), passphrase="mat-khau")
    assert spec.source == "software"
    _assert_valid(_sign(spec, unsigned), Path(device_key.signing_cert))
    with pytest.raises(pdfsign.SigningError):
        _sign(pdfsign.KeySpec(signing_key=str(p12), passphrase="sai"), unsigned)


def test_a_missing_key_is_a_signing_error(unsigned, tmp_path):
    with pytest.raises(pdfsign.SigningError):
        _sign(pdfsign.KeySpec(signing_key=str(tmp_path / "none.pem"),
                              signing_cert=str(tmp_path / "none.crt")), unsigned)


@pytest.mark.skipif(shutil.which("softhsm2-util") is None or not SOFTHSM.exists(),
                    reason="softhsm2 not installed (provisioning/apt-test.txt)")
def test_pkcs11_token_signs(device_key, unsigned, tmp_path, monkeypatch):
    """The key imported into a SoftHSM token, the certificate from a file."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n", encoding="ascii")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}

    def util(*args: str) -> None:
        subprocess.run(["softhsm2-util", *args], env=env, check=True, capture_output=True,
                       timeout=60)

    util("--init-token", "--free", "--label", "officer-token", "--pin", "123456",
         "--so-pin", "87654321")
    util("--import", device_key.signing_key, "--token", "officer-token", "--label", "officer",
         "--id", "01", "--pin", "123456")
    spec = pdfsign.KeySpec(signing_cert=device_key.signing_cert, pkcs11_module=str(SOFTHSM),
                           pkcs11_token="officer-token", pkcs11_key="officer",
                           pkcs11_pin="123456")
    assert spec.source == "pkcs11"
    _assert_valid(_sign(spec, unsigned), Path(device_key.signing_cert))
    with pytest.raises(pdfsign.SigningError):
        _sign(pdfsign.KeySpec(signing_cert=device_key.signing_cert,
                              pkcs11_module=str(SOFTHSM), pkcs11_token="officer-token",
                              pkcs11_key="officer", pkcs11_pin="000000"), unsigned)


def _pair_matches(spec: pdfsign.KeySpec) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(spec.signing_key).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(spec.signing_cert).read_bytes())
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == cert.public_key().public_bytes(*der)


def _make_key(folder: str) -> str:
    return pdfsign.ensure_device_key(Path(folder), "kiosk-01", "000.00.12.H42").signing_key


def test_device_key_is_never_written_through_a_link_nor_left_readable(tmp_path):
    """The key's temporary name may hold a leftover or a planted link: the key goes
    into a new 0600 file, never through it; a key found readable by others is made
    0600 again."""
    import os

    folder = tmp_path / "keys"
    folder.mkdir()
    outside = tmp_path / "outside.pem"
    outside.write_bytes(b"")
    (folder / f".{pdfsign.DEVICE_KEY}.tmp-{os.getpid()}").symlink_to(outside)
    spec = pdfsign.ensure_device_key(folder, "kiosk-01", "000.00.12.H42")
    assert outside.read_bytes() == b""
    key = Path(spec.signing_key)
    assert not key.is_symlink() and key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)  # copied in with a wide umask
    pdfsign.ensure_device_key(folder, "kiosk-01", "000.00.12.H42")
    assert key.stat().st_mode & 0o777 == 0o600


def test_processes_making_the_device_key_at_once_leave_one_matching_pair(tmp_path):
    """gunicorn's workers may sign the first dossier at the same moment: whatever the
    interleaving, the key on disk is the one the certificate names."""
    from concurrent.futures import ProcessPoolExecutor

    for round_ in range(12):
        folder = tmp_path / f"keys{round_}"
        with ProcessPoolExecutor(4) as pool:
            paths = set(pool.map(_make_key, [str(folder)] * 8))
        assert len(paths) == 1
        assert _pair_matches(pdfsign.ensure_device_key(folder, "kiosk-01", "000.00.12.H42"))
