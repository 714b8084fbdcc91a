"""Content-addressed files (page images, thumbnails, paper PDFs) beside the database.

A file is written to a temporary name, fsynced, renamed into place and its folder
fsynced, so after a crash it either exists whole under its hash or not at all; the
database row that names it is committed only afterwards.

Files are sealed with the installation's key (AES-GCM, system/crypto.py): the name
stays the sha256 of the *plaintext*, so the hashes in signed records and in the
database do not change, and the associated data is that name plus its suffix, so a
sealed file renamed to another address (or a thumbnail passed off as a page) fails to
open. A file written before sealing existed is still read, verified by its hash.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from appliance.store.errors import DiskFull, StoreError
from appliance.system import crypto
from appliance.system.crypto import Sealer, Tampered


class FileStore:
    """The file store under `root`, sealing with `sealer` or the key in `key_file`.

    Without either, the key is the one beside the data folder (paths.key_path's
    default); it is loaded on first use and never created here: the database's
    `connect` makes and checks it, so a file store cannot start a second key.
    """

    def __init__(self, root: str | Path, *, sealer: Sealer | None = None,
                 key_file: str | Path | None = None) -> None:
        self.root = Path(root)
        self._sealer = sealer
        self._key_file = Path(key_file) if key_file else self.root.parent / crypto.KEY_FILE_NAME

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            self._sealer = crypto.load_sealer(self._key_file)
        return self._sealer

    def path(self, sha256: str, suffix: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def exists(self, sha256: str, suffix: str) -> bool:
        return self.path(sha256, suffix).is_file()

    @staticmethod
    def _aad(sha256: str, suffix: str) -> bytes:
        return f"{sha256}{suffix}".encode("ascii")

    def put(self, data: bytes, suffix: str) -> str:
        """Store bytes sealed; return the sha256 of their plaintext. Idempotent."""
        sha = hashlib.sha256(data).hexdigest()
        self._write(self.path(sha, suffix), self.sealer.seal(data, self._aad(sha, suffix)),
                    lambda: self.read(sha, suffix))
        return sha

    def put_derived(self, sha256: str, suffix: str, data: bytes) -> None:
        """Store a file derived from another (a page's thumbnail) under that one's hash."""
        self._write(self.path(sha256, suffix), self.sealer.seal(data, self._aad(sha256, suffix)),
                    lambda: self.read_derived(sha256, suffix))

    def hold(self, sha256: str, suffix: str, data: bytes) -> None:
        """Under the caller's write lock, with the row that names it: the file put before
        the transaction (its fsync outside the lock) is still there, touched young, or
        is put again from `data` (its plaintext) if a removal took it meanwhile. A
        removal (erasure, the orphan sweep) looks and unlinks under the same lock, so
        the row never names a missing file, and other writers wait microseconds, not a
        fsync (red team 12: the kiosk waited 1.2 s behind one page on a slow card)."""
        path = self.path(sha256, suffix)
        try:
            os.utime(path)
            return
        except OSError:
            pass
        self._write(path, self.sealer.seal(data, self._aad(sha256, suffix)))

    def _write(self, target: Path, data: bytes,
               intact: Callable[[], object] | None = None) -> None:
        # Same address and size: the same content sealed before (nonces differ, sizes
        # do not), so an idempotent put does not rewrite (and re-fsync) the file. It is
        # made young again, though: to the orphan sweep, which keeps a file no row
        # names only while it is young, an old file put again for a row about to be
        # written looked abandoned (red team 8). Gone meanwhile: written below.
        # And only if it still opens (`intact`): one damaged in place, its size kept (a
        # disk error), was taken as stored, and a new dossier's row named a file that
        # fails at sign-off (red team 13). Read only on this rare path.
        try:
            if target.stat().st_size == len(data) and _opens(intact):
                os.utime(target)
                return
        except OSError:
            pass  # not there, or gone between the look and the touch: written below
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
            crypto.fsync_dir(target.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"no space left for {target.name} in {self.root}") from e
            raise StoreError(f"cannot write {target}: {e}") from e


    def _open(self, sha256: str, suffix: str) -> bytes:
        blob = self.path(sha256, suffix).read_bytes()
        if not crypto.is_sealed(blob):
            return blob  # written before sealing; the caller verifies what it can
        try:
            return self.sealer.open(blob, self._aad(sha256, suffix))
        except Tampered as e:
            raise StoreError(f"file {sha256}{suffix} is corrupt or not this device's "
                             f"(it does not open: {e})") from e

    def read(self, sha256: str, suffix: str) -> bytes:
        """Read and verify: a file whose bytes no longer match its name is an error, not data."""
        data = self._open(sha256, suffix)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreError(f"file {sha256}{suffix} is corrupt (hash mismatch)")
        return data

    def read_derived(self, sha256: str, suffix: str) -> bytes:
        """A derived file (thumbnail): authenticated by its seal, not by its own hash."""
        return self._open(sha256, suffix)

    def remove(self, sha256: str, suffix: str) -> bool:
        """Delete a stored file for good (erasure, retention); True if one was there."""
        target = self.path(sha256, suffix)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StoreError(f"cannot remove {target}: {e}") from e
        crypto.fsync_dir(target.parent)
        return True


def _opens(intact: Callable[[], object] | None) -> bool:
    """Whether a stored file reads back as what it should hold (no check: True)."""
    if intact is None:
        return True
    try:
        intact()
    except (StoreError, OSError):
        return False
    return True
