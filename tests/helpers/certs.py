"""A throw-away CA, server and client certificates made with openssl at test time.

Keys live only in the test's tmp_path; nothing here is ever committed. EC P-256 keys
because RSA key generation would cost seconds of a CPU shared with training jobs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(name: str, cwd: Path) -> None:
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name, cwd=cwd)


def _signed(stem: str, subject: str, ext: str, cwd: Path) -> None:
    _key(f"{stem}.key", cwd)
    _run("req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr", cwd=cwd)
    (cwd / f"{stem}.ext").write_text(ext, encoding="ascii")
    _run("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-sha256", "-extfile", f"{stem}.ext",
         "-out", f"{stem}.crt", cwd=cwd)


def make_pki(folder: Path, client_cn: str = "kiosk-01") -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    _key("ca.key", folder)
    _run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=test-ca", "-days", "2",
         "-sha256", "-out", "ca.crt", cwd=folder)
    _signed("server", "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", folder)
    _signed("client", f"/CN={client_cn}", "extendedKeyUsage=clientAuth\n", folder)
    return Pki(folder / "ca.crt", folder / "server.crt", folder / "server.key",
               folder / "client.crt", folder / "client.key")


def client_certificate(pki: Pki, cn: str) -> tuple[Path, Path]:
    """Another client certificate from the same CA: (certificate, key), named after cn."""
    folder = pki.ca_cert.parent
    stem = "client-" + "".join(c if c.isalnum() else "_" for c in cn)
    _signed(stem, f"/CN={cn}", "extendedKeyUsage=clientAuth\n", folder)
    return folder / f"{stem}.crt", folder / f"{stem}.key"
