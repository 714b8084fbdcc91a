"""Content-addressed files (page images, paper PDFs) beside the database.

A file is written to a temporary name, fsynced, renamed into place and its folder
fsynced, so after a crash it either exists whole under its hash or not at all; the
database row that names it is committed only afterwards.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from appliance.store.errors import DiskFull, StoreError


class FileStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str, suffix: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, data: bytes, suffix: str) -> str:
        """Store bytes; return their sha256. Idempotent for identical content."""
        sha = hashlib.sha256(data).hexdigest()
        self._write(self.path(sha, suffix), data)
        return sha

    def put_derived(self, sha256: str, suffix: str, data: bytes) -> None:
        """Store a file derived from another (a page's thumbnail) under that one's hash."""
        self._write(self.path(sha256, suffix), data)

    def _write(self, target: Path, data: bytes) -> None:
        if target.exists() and target.stat().st_size == len(data):
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            # Inside the try: a folder that cannot be made is a store error like any
            # other write failure, with the same disk-full check, not a bare OSError.
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"no space left for {target.name} in {self.root}") from e
            raise StoreError(f"cannot write {target}: {e}") from e

    def read(self, sha256: str, suffix: str) -> bytes:
        """Read and verify: a file whose bytes no longer match its name is an error, not data."""
        data = self.path(sha256, suffix).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreError(f"file {sha256}{suffix} is corrupt (hash mismatch)")
        return data
