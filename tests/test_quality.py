"""Project-wide checks: the code is ruff clean and no private key is committed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY_RE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def test_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "appliance", "tests", "models"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_private_key_is_tracked():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if files.returncode != 0:  # not a git checkout (e.g. an unpacked release)
        return
    for name in files.stdout.splitlines():
        path = REPO / name
        if path.is_file() and path.stat().st_size < 1_000_000:
            assert not KEY_RE.search(path.read_bytes()), name
