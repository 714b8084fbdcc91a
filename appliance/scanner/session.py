"""The worker's hold on "its" scanner across jobs: found by identity, opened when
needed, dropped and found again after a replug or a backend error, all without
restarting the service.

`open_scanner()` per job already looks the scanner up again each time; the session
adds what a long-lived worker needs on top: it pins the identity of the device it
first opened (so `device = ""` in the configuration does not drift to another
scanner plugged in later), drops the handle on any I/O-level fault (`reopen`), and
tells "the scanner vanished" (ScannerGone) from "there never was one" (not found).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from PIL import Image

from appliance.scanner import device
from appliance.scanner.device import (
    READ_TIMEOUT_S,
    CancelToken,
    Capabilities,
    ProgressCallback,
    Scanner,
)
from appliance.scanner.errors import (
    ScannerError,
    ScannerGone,
    ScannerIOError,
    ScannerNotFound,
    ScannerTimeout,
)
from appliance.scanner.identity import ScannerIdentity
from appliance.scanner.settings import ScanSettings

log = logging.getLogger(__name__)


class ScannerSession:
    """One scanner for the life of a worker. Not thread-safe: one scan at a time,
    from the worker's job thread."""

    def __init__(self, wanted: str = "", resolution: int = 200, mode: str = "Color", *,
                 read_timeout: float = READ_TIMEOUT_S,
                 page_timeout: float | None = None) -> None:
        self.wanted = wanted
        self.resolution = resolution
        self.mode = mode
        self.read_timeout = read_timeout
        self.page_timeout = page_timeout
        self.identity: ScannerIdentity | None = (
            ScannerIdentity.from_string(wanted) if ScannerIdentity.looks_like(wanted) else None)
        self._scanner: Scanner | None = None
        self.reopened = 0  # how many times a dropped handle was opened again

    def _target(self) -> str:
        # After the first open, always the identity: a SANE name may now belong to
        # another device (USB numbers are reused) or to none.
        return self.identity.to_string() if self.identity is not None else self.wanted

    def scanner(self) -> Scanner:
        """The open scanner, opening (or re-finding) it first if needed."""
        if self._scanner is not None and not self._scanner.closed:
            return self._scanner
        seen_before = self.identity is not None and self._scanner is not None
        try:
            scanner = device.open_scanner(self._target(), self.resolution, self.mode,
                                          read_timeout=self.read_timeout,
                                          page_timeout=self.page_timeout)
        except (ScannerNotFound, ScannerIOError) as e:
            # Seen before and now not listed (USB) or not answering (network: airscan
            # lists configured devices whether they answer or not): gone.
            if seen_before and not isinstance(e, ScannerGone | ScannerTimeout):
                raise ScannerGone(f"scanner {self.identity} is no longer connected",
                                  device=e.device) from e
            raise
        if self._scanner is not None:
            self.reopened += 1
            log.info("scanner found again as %s", scanner.info.name)
        self._scanner = scanner
        if self.identity is None:
            self.identity = scanner.identity
            log.info("scanner %s is %s", scanner.info.name, self.identity)
        return scanner

    def capabilities(self) -> Capabilities:
        return self.scanner().capabilities()

    def scan(self, source: str | ScanSettings = "flatbed", *,
             cancel: CancelToken | None = None,
             progress: ProgressCallback | None = None) -> Iterator[Image.Image]:
        """`Scanner.scan` on the session's scanner. A fault that calls for it drops
        the handle, so the next scan finds the device again (new USB address, new
        SANE name, scanner restarted); pages already yielded stay the caller's.
        A batch is never resumed by itself: what the feeder did with the sheet in
        flight is unknown, the officer decides ("Scan on")."""
        scanner = self.scanner()
        try:
            yield from scanner.scan(source, cancel=cancel, progress=progress)
        except ScannerError as e:
            if not e.reopen:
                raise  # a paper fault: the same handle works once the officer acts
            log.warning("dropping scanner %s after %s; it is looked up again next time",
                        scanner.info.name, e.key)
            self.drop()
            if isinstance(e, ScannerTimeout):
                raise  # its backend may still be busy: do not open it again now
            try:  # one look now, to tell a vanished scanner from a hiccup
                self.scanner()
            except ScannerGone as gone:
                gone.pages_done = e.pages_done
                raise gone from e
            except ScannerError:
                pass
            raise

    def drop(self) -> None:
        """Close the handle (the identity is kept)."""
        if self._scanner is not None and not self._scanner.closed:
            self._scanner.close()

    def close(self) -> None:
        self.drop()
        self._scanner = None

    def __enter__(self) -> ScannerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
