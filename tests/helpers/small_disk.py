"""A real small disk for disk-full tests: a tmpfs of a chosen size mounted on a folder
the test owns, and a filler that takes its space down to the last byte (or to a
chosen number of free bytes).

Why a tmpfs and not a mock: SQLite's WAL growth, an fsync'd rename in the file store
and a process's own log lines all meet ENOSPC/SQLITE_FULL for real here, where they
would meet it on a device, so what a test proves holds for the real code paths.
Mounting needs root; where it cannot mount, the test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """`folder` (made if absent) as a tmpfs of `size` ("4m"), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system of `folder`, as the product measures them."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(folder: Path, leave: int = 0, name: str = "filler") -> Path:
    """Write a filler file in `folder` until only `leave` bytes are free (0: full to
    the last byte; on a tmpfs the rest is in whole 4 KiB pages). Returns the filler
    (unlink it to give the space back)."""
    filler = folder / f"{name}-{leave}.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            try:
                while free_bytes(folder) - size >= leave:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
