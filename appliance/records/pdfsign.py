"""The officer's PAdES signature on a paper's result PDF (pyhanko).

Circular 01/2023/TT-VPCP Art. 8: whoever digitizes a paper signs it with a personal
digital signature that shows the signer's name and the time, at the top left of the
first page. The PDF from imaging/pdfa.py leaves an empty box there, in the band above
the paper, so the visible signature never covers the citizen's page.

The key comes from one of three places, in this order:

- a PKCS#11 token (an officer's USB token; SoftHSM in the tests): `pkcs11_module`
  with the token label, key label and PIN, the certificate from `signing_cert`;
- a software key: `signing_key` naming a PKCS#12 file (.p12/.pfx), or a PEM key with
  its certificate in `signing_cert`;
- neither configured: the device's own key and self-signed certificate, made once in
  the data folder (`ensure_device_key`), so a fresh appliance still signs; the
  signature then proves integrity and which device, and the officer's name is the
  /Name of the signature. A real office installs an agency-issued certificate.

The signature is PAdES baseline (ETSI.CAdES.detached, SHA-256) with the signing time
in the signature dictionary (/M) and printed in the visible box. The appearance's
text is set in DejaVu Sans, embedded, because PDF/A refuses unembedded fonts and an
officer's name is Vietnamese.
"""

from __future__ import annotations

import fcntl
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.records.errors import RecordsError
from appliance.system import crypto

log = logging.getLogger(__name__)

FIELD_NAME = "ChuKySo1"
DEVICE_KEY = "signing-key.pem"
DEVICE_CERT = "signing-cert.pem"


class SigningError(RecordsError):
    """No usable key, or the PDF could not be signed."""


@dataclass(frozen=True)
class KeySpec:
    """Where the signing key is; empty strings mean "not this source"."""

    signing_key: str = ""  # PEM key, or PKCS#12 file (.p12/.pfx)
    signing_cert: str = ""  # PEM/DER certificate of the key (or of the token's key)
    passphrase: str = ""  # of the PEM key or PKCS#12 file
    pkcs11_module: str = ""  # e.g. /usr/lib/softhsm/libsofthsm2.so
    pkcs11_token: str = ""  # token label
    pkcs11_key: str = ""  # private key label on the token
    pkcs11_pin: str = ""
    device: bool = False  # the device's own key from ensure_device_key

    @property
    def source(self) -> str:
        """pkcs11, software (a configured key file) or device (made on the device)."""
        if self.pkcs11_module:
            return "pkcs11"
        return "device" if self.device or not self.signing_key else "software"


@dataclass(frozen=True)
class SignatureCheck:
    """What a validator found: intact (bytes unchanged), valid (chain trusted too)."""

    intact: bool
    valid: bool
    signer: str
    signed_at: datetime | None
    covers_whole_file: bool
    summary: str


def ensure_device_key(folder: Path, common_name: str, organisation: str) -> KeySpec:
    """The device's own signing key and self-signed certificate, made on first use.

    EC P-256: made in milliseconds on a Pi, and accepted by every PAdES validator.
    The key file is written 0600 and never leaves the device.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key_path, cert_path = folder / DEVICE_KEY, folder / DEVICE_CERT
    if key_path.is_file() and cert_path.is_file():
        _keep_private(key_path)
        return KeySpec(signing_key=str(key_path), signing_cert=str(cert_path), device=True)
    folder.mkdir(parents=True, exist_ok=True)
    # Two processes (gunicorn's workers) signing the first dossier at once would each
    # make a key and could leave one's key beside the other's certificate: one makes
    # the pair, under a lock, the other finds it made.
    with open(folder / ".device-key.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if key_path.is_file() and cert_path.is_file():
            return KeySpec(signing_key=str(key_path), signing_cert=str(cert_path),
                           device=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                          x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.KeyUsage(True, True, False, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                               critical=False)
                .sign(key, hashes.SHA256()))
        crypto.write_private_file(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("made this device's signing key %s (self-signed, %s)", key_path, common_name)
    return KeySpec(signing_key=str(key_path), signing_cert=str(cert_path), device=True)


def _keep_private(key_path: Path) -> None:
    """A key file others may read (copied in with a wide umask) is made 0600 again."""
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("signing key %s had mode %o; set to 600", key_path, mode)
        key_path.chmod(0o600)


@contextmanager
def open_signer(spec: KeySpec) -> Iterator[object]:
    """A pyhanko signer for the spec; a token session is closed when done."""
    from pyhanko.sign import signers

    passphrase = spec.passphrase.encode("utf-8") if spec.passphrase else None
    if spec.source == "pkcs11":
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.keys import load_cert_from_pemder
        from pyhanko.sign import pkcs11

        try:
            session = pkcs11.open_pkcs11_session(
                spec.pkcs11_module, token_criteria=TokenCriteria(label=spec.pkcs11_token or None),
                user_pin=spec.pkcs11_pin or None)
        except Exception as e:  # noqa: BLE001 - a token error of any kind: no signature
            raise SigningError(f"PKCS#11 token {spec.pkcs11_token!r} did not open: {e}") from e
        try:
            cert = load_cert_from_pemder(spec.signing_cert) if spec.signing_cert else None
            # Tokens (SoftHSM among them) often sign EC keys only in the raw mode:
            # pyhanko then hashes itself and asks the token for plain ECDSA.
            raw = cert is not None and cert.public_key.algorithm == "ec"
            yield pkcs11.PKCS11Signer(session, key_label=spec.pkcs11_key or None,
                                      cert_label=None if cert else spec.pkcs11_key,
                                      signing_cert=cert, use_raw_mechanism=raw)
        finally:
            session.close()
        return
    try:
        if spec.signing_key.lower().endswith((".p12", ".pfx")):
            signer = signers.SimpleSigner.load_pkcs12(spec.signing_key, passphrase=passphrase)
        else:
            signer = signers.SimpleSigner.load(spec.signing_key, spec.signing_cert,
                                               key_passphrase=passphrase)
    except (OSError, ValueError) as e:
        raise SigningError(f"signing key {spec.signing_key!r} unusable: {e}") from e
    if signer is None:  # pyhanko logs and returns None on a bad file
        raise SigningError(f"signing key {spec.signing_key!r} or its certificate unusable")
    yield signer


def _pdf_signer(meta: object, signer: object, box: tuple[float, float, float, float],
                when: datetime) -> object:
    """A pyhanko PdfSigner that keeps the file PDF/A-2 and signs at `when`.

    Two departures from pyhanko's defaults, both for the archive: (1) an ECDSA key
    on a NIST curve makes pyhanko declare the ISO 32002 extension, whose base version
    is PDF 2.0, and a PDF/A-2 file must stay PDF 1.7 (validators verify ECDSA either
    way), so only the ESIC (PAdES) extension is declared; (2) the signing time is
    the sign-off's, the same instant printed in the box and the metadata.
    """
    from pyhanko.sign import fields, signers
    from pyhanko.stamp import StaticStampStyle

    class _ArchiveSigner(signers.PdfSigner):
        def register_extensions(self, pdf_out: object, *, md_algorithm: str) -> None:
            from pyhanko.sign.signers import constants

            pdf_out.register_extension(constants.ESIC_EXTENSION_1)  # type: ignore[attr-defined]

        def init_signing_session(self, pdf_out: object, existing_fields_only: bool = False
                                 ) -> object:
            session = super().init_signing_session(pdf_out, existing_fields_only)
            session.system_time = when
            return session

    # The box's text is page content (imaging/pdfa.py); the widget draws the frame
    # only, so its appearance needs no font of its own (PDF/A: every font embedded).
    style = StaticStampStyle(border_width=1, background=None)
    return _ArchiveSigner(meta, signer=signer, stamp_style=style,
                          new_field_spec=fields.SigFieldSpec(FIELD_NAME, on_page=0, box=box))


def sign_pdf(pdf: bytes, signer: object, *, box: tuple[float, float, float, float],
             officer: str, when: datetime | None = None,
             reason: str = "Chứng thực bản điện tử chuyển đổi từ văn bản giấy",
             location: str = "") -> bytes:
    """Append the officer's signature (an incremental update) in `box` on page 1."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    at = (when or datetime.now(UTC)).astimezone(UTC)
    # A certification signature that allows no change (DocMDP P=1): an approval one let
    # anyone add a second signature whose visible stamp is drawn over the citizen's
    # paper, and viewers still called the officer's signature valid.
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        name=officer, reason=reason, location=location or None,
        certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    out = io.BytesIO()
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        _pdf_signer(meta, signer, box, at).sign_pdf(writer, output=out)
    except Exception as e:  # noqa: BLE001 - pyhanko raises many kinds; one error for us
        raise SigningError(f"the PDF could not be signed: {e}") from e
    return out.getvalue()


def verify_pdf(pdf: bytes, trust_roots: list[bytes] | None = None) -> SignatureCheck:
    """Validate the (first) signature: intact always checked; `valid` also needs the
    chain to end in one of `trust_roots` (PEM or DER certificates) and the signature to
    cover the whole file. The file the appliance stores is the one it signed, so any
    revision after it (a rewritten /Info or XMP, a second signature's stamp, bytes
    appended) makes it not valid, even where pyhanko's own verdict would allow it as
    form filling or a metadata update."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = reader.embedded_signatures
    except Exception as e:  # noqa: BLE001 - a broken file is simply not valid
        return SignatureCheck(False, False, "", None, False, f"unreadable PDF: {e}")
    if not embedded:
        return SignatureCheck(False, False, "", None, False, "no signature")
    roots = [_certificate(data) for data in trust_roots or []]
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    sig = embedded[0]
    try:
        status = validate_pdf_signature(sig, context)
    except Exception as e:  # noqa: BLE001 - a corrupt signature is invalid, not a crash
        return SignatureCheck(False, False, "", None, False, f"validation failed: {e}")
    signer = str(sig.sig_object.get("/Name", ""))
    coverage = getattr(status, "coverage", None)
    # ENTIRE_REVISION would mean bytes were appended after the signature.
    whole = coverage is not None and coverage.name == "ENTIRE_FILE"
    return SignatureCheck(bool(status.intact), bool(status.bottom_line) and whole, signer,
                          getattr(status, "signer_reported_dt", None), whole,
                          status.summary())


def _certificate(data: bytes) -> object:
    from asn1crypto import pem, x509

    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)
