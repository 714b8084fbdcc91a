"""The one module that talks to SANE (through python-sane).

Callers get typed errors (`appliance.scanner.errors`) instead of `_sane.error`, a
stable identity per device, and pages one at a time: `Scanner.scan()` is a
generator, so the worker stores page k before asking the feeder for page k+1 and
a jam on page 7 leaves pages 1-6 safely on disk (the error is raised after them).

SANE_CONFIG_DIR: libsane reads it at the process's first `sane.init()` (here: the
first `list_devices()` / `open_scanner()`), so set it first, e.g. with
`sane_env.use_sane_config()`. The list of backends (dll.conf) is then fixed for the
life of the process; backend files (test.conf, airscan.conf) are re-read by
`reload_sane()`. Only one process should drive a scanner (the worker); web
workers never open it, and SANE must not be initialised before a fork.

python-sane releases the GIL while scanning but *not* in close() or sane.exit():
those block every Python thread of the process until the backend returns (airscan
waits for the scanner to answer its DELETE, up to its 30 s HTTP timeout). A
watchdog-pinging thread in the worker stalls meanwhile; size WatchdogSec for it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import _sane
import sane
from PIL import Image

from appliance.scanner.errors import (
    ScannerError,
    ScannerInvalid,
    ScannerIOError,
    ScannerNoDocuments,
    ScannerNotFound,
    ScannerUnsupported,
    wrap_sane_error,
)

log = logging.getLogger(__name__)

A4_MM = (210.0, 297.0)
SOURCES = ("flatbed", "adf")

# Parts of SANE device names that change when the same scanner is replugged or
# the config is reordered: USB bus/device numbers, airscan's entry index.
_VOLATILE_NAME_PARTS = (
    (re.compile(r"libusb:\d+:\d+"), "libusb"),
    (re.compile(r"^airscan:[ew]\d+:"), "airscan:"),
    (re.compile(r"/dev/bus/usb/\d+/\d+"), "usb"),
)

# Source option values, by what the appliance means. Backends disagree: the test
# backend says "Automatic Document Feeder", airscan "ADF", others "ADF Front".
_FLATBED_WORDS = ("flatbed", "platen", "normal")
_ADF_WORDS = ("adf", "feeder", "document feeder")


@dataclass(frozen=True)
class DeviceInfo:
    """A scanner as SANE lists it, plus an identity that survives a replug."""

    name: str
    vendor: str
    model: str
    type: str

    @property
    def backend(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def identity(self) -> str:
        """`backend|vendor|model|name-without-bus-numbers`: what the configuration
        should remember, because a USB scanner's SANE name changes after a power
        cycle (a top complaint against scanservjs)."""
        stable = self.name
        for pattern, replacement in _VOLATILE_NAME_PARTS:
            stable = pattern.sub(replacement, stable)
        return "|".join((self.backend, self.vendor, self.model, stable))


def _ignore_sigpipe() -> None:
    """Put SIGPIPE back to "ignore" after libsane touched it.

    Python ignores SIGPIPE so a write to a closed socket raises EPIPE; SANE backends
    (the test backend's reader, sanei_thread) reset it to the default action, after
    which any later write to a dead peer (an MQTT broker, a browser) kills the whole
    process silently. Only the main thread may change signal dispositions.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


@functools.cache
def _sane_started() -> int:
    # Cached so the library is initialised once per process: libsane's dll layer
    # must not be re-initialised while a device is open.
    version = sane.init()
    _ignore_sigpipe()
    log.debug("SANE initialised: %s", version)
    return int(version[0])


def reload_sane() -> None:
    """Re-read the backends' configuration files (e.g. a new airscan.conf).
    Closes SANE underneath every open Scanner: close them first."""
    shutdown_sane()
    _sane_started()


def shutdown_sane() -> None:
    """Release SANE (backend threads, sockets); the next call initialises it again,
    re-reading the backends' files from the current SANE_CONFIG_DIR."""
    if _sane_started.cache_info().currsize:
        with contextlib.suppress(_sane.error):
            sane.exit()
        _sane_started.cache_clear()


def list_devices(local_only: bool = False) -> list[DeviceInfo]:
    """Every scanner SANE can see now (configured eSCL devices are listed even
    while their server is down; the error comes on open)."""
    _sane_started()
    try:
        raw = sane.get_devices(local_only)
    except _sane.error as e:
        raise wrap_sane_error(e, context="listing devices") from e
    return [DeviceInfo(str(n), str(v), str(m), str(t)) for n, v, m, t in raw]


def resolve_device(wanted: str, devices: Sequence[DeviceInfo]) -> DeviceInfo:
    """The device meant by `wanted`: '' = the first one, else an exact SANE name,
    else an identity (so a replugged USB scanner is found again)."""
    if not devices:
        raise ScannerNotFound("no scanner found", device=wanted)
    if not wanted:
        return devices[0]
    for dev in devices:
        if dev.name == wanted:
            return dev
    for dev in devices:
        if dev.identity == wanted:
            return dev
    raise ScannerNotFound(f"scanner not found: {wanted}", device=wanted)


def _pick_source(values: Sequence[str], source: str) -> str | None:
    lowered = [(v, v.lower()) for v in values]
    if source == "flatbed":
        return next((v for v, low in lowered if any(w in low for w in _FLATBED_WORDS)), None)
    simplex = [(v, low) for v, low in lowered if "duplex" not in low and "back" not in low]
    return next((v for v, low in simplex if any(w in low for w in _ADF_WORDS)), None)


class Scanner:
    """An open SANE device. Use as a context manager; one scan at a time."""

    def __init__(self, dev: sane.SaneDev, info: DeviceInfo, resolution: int, mode: str) -> None:
        self._dev = dev
        self.info = info
        self.resolution = resolution
        self.mode = mode
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(_sane.error):
            self._dev.cancel()
        try:
            self._dev.close()
        except _sane.error as e:
            log.warning("closing %s: %s", self.info.name, e)
        finally:
            _ignore_sigpipe()

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- options ---------------------------------------------------------------------

    def option_names(self) -> list[str]:
        return list(self._dev.optlist)

    def set_option(self, option: str, value: Any) -> None:
        """Set a raw SANE option (technician diagnostics, fault drills on the `test`
        backend); errors come back typed like everything else."""
        if option not in self._dev.opt:
            raise ScannerUnsupported(f"{self.info.name} has no option {option!r}",
                                     device=self.info.name)
        self._set(option, value)

    def _constraint(self, option: str) -> Any:
        opt = self._dev.opt.get(option)
        return None if opt is None else opt.constraint

    def _set(self, option: str, value: Any) -> None:
        try:
            setattr(self._dev, option, value)
        except AttributeError as e:
            raise ScannerUnsupported(f"{self.info.name}: option {option}: {e}",
                                     device=self.info.name) from e
        except _sane.error as e:
            raise wrap_sane_error(e, device=self.info.name,
                                  context=f"setting {option}={value!r}") from e

    def sources(self) -> list[str]:
        """The appliance's names ("flatbed", "adf") this device offers."""
        values = self._constraint("source")
        if not isinstance(values, list):
            return ["flatbed"]
        return [s for s in SOURCES if _pick_source([str(v) for v in values], s)]

    def _select_source(self, source: str) -> None:
        if source not in SOURCES:
            raise ScannerInvalid(f"unknown source {source!r}", device=self.info.name)
        values = self._constraint("source")
        if not isinstance(values, list):
            if source == "adf":
                raise ScannerUnsupported("this scanner has no document feeder",
                                         device=self.info.name)
            return
        value = _pick_source([str(v) for v in values], source)
        if value is None:
            raise ScannerUnsupported(f"{self.info.name} offers no {source} (has {values})",
                                     device=self.info.name)
        self._set("source", value)

    def _select_resolution(self) -> int:
        wanted = self.resolution
        constraint = self._constraint("resolution")
        chosen = wanted
        if isinstance(constraint, list):
            allowed = sorted(int(v) for v in constraint)
            # Never below what was asked: Decree 30/2020 sets a 200 dpi floor.
            higher = [v for v in allowed if v >= wanted]
            if not higher:
                raise ScannerUnsupported(
                    f"{self.info.name} cannot scan at {wanted} dpi (max {allowed[-1]})",
                    device=self.info.name)
            chosen = higher[0]
        elif isinstance(constraint, tuple) and len(constraint) == 3:
            low, high, _ = constraint
            if not low <= wanted <= high:
                raise ScannerUnsupported(f"{self.info.name}: {wanted} dpi outside {low}-{high}",
                                         device=self.info.name)
        self._set("resolution", chosen)
        return chosen

    def _select_geometry(self, page_mm: tuple[float, float]) -> None:
        # After the source: switching source resets the window on some backends
        # (airscan), which would otherwise scan the feeder's default area.
        for option, value in (("tl_x", 0.0), ("tl_y", 0.0),
                              ("br_x", page_mm[0]), ("br_y", page_mm[1])):
            if option not in self._dev.opt or not self._dev[option].is_active():
                continue
            constraint = self._constraint(option)
            if isinstance(constraint, tuple) and len(constraint) == 3:
                value = max(float(constraint[0]), min(float(constraint[1]), value))
            self._set(option, float(value))

    def _prepare(self, source: str, page_mm: tuple[float, float]) -> int:
        self._select_source(source)
        if "mode" in self._dev.opt:
            self._set("mode", self.mode)
        if "depth" in self._dev.opt and self._dev["depth"].is_active():
            with contextlib.suppress(ScannerError):
                self._set("depth", 8)
        chosen = self._select_resolution()
        self._select_geometry(page_mm)
        return chosen

    # --- scanning --------------------------------------------------------------------

    def scan(self, source: str = "flatbed", *,
             page_mm: tuple[float, float] = A4_MM) -> Iterator[Image.Image]:
        """Yield pages one by one as they leave the device.

        Flatbed: one page. ADF: until the feeder is empty; an empty feeder before the
        first page raises ScannerNoDocuments. Any fault is raised after the pages
        already yielded, with `pages_done` set, so the caller keeps those pages.
        Closing the generator early cancels the batch.
        """
        if self._closed:
            raise ScannerInvalid("scanner is closed", device=self.info.name)
        dpi = self._prepare(source, page_mm)
        pages = 0
        try:
            while True:
                try:
                    try:
                        self._dev.start()
                        image = self._dev.snap(no_cancel=(source == "adf"))
                    finally:
                        _ignore_sigpipe()
                except _sane.error as e:
                    err = wrap_sane_error(e, device=self.info.name, pages_done=pages,
                                          context=f"page {pages + 1}")
                    if isinstance(err, ScannerNoDocuments) and pages > 0:
                        return
                    raise err from e
                except RuntimeError as e:  # python-sane: "Scanner returned no data"
                    raise ScannerIOError(f"{self.info.name}: page {pages + 1}: {e}",
                                         device=self.info.name, pages_done=pages) from e
                image.info["dpi"] = (dpi, dpi)
                pages += 1
                log.debug("%s: page %d (%dx%d)", self.info.name, pages, *image.size)
                yield image
                if source != "adf":
                    return
        finally:
            # Also runs when the caller stops early or the generator is collected after
            # close(): then the handle is gone and close() has already cancelled.
            if not self._closed:
                with contextlib.suppress(_sane.error):
                    self._dev.cancel()


def open_scanner(name: str = "", resolution: int = 200, mode: str = "Color") -> Scanner:
    """Open a scanner by SANE name or identity ('' = the first one listed).
    Mode and resolution are applied for each scan, after the source is chosen."""
    _sane_started()
    info: DeviceInfo | None = None
    if not name or "|" in name:
        info = resolve_device(name, list_devices())
        name = info.name
    try:
        dev = sane.open(name)
    except _sane.error as e:
        _ignore_sigpipe()
        err = wrap_sane_error(e, device=name, context="opening")
        if isinstance(err, ScannerInvalid):
            # SANE answers an unknown device name with "Invalid argument".
            raise ScannerNotFound(f"scanner not found: {name}", device=name) from e
        raise err from e
    _ignore_sigpipe()
    if info is None:
        info = DeviceInfo(name, "", "", "")
        with contextlib.suppress(ScannerError):
            info = next((d for d in list_devices() if d.name == name), info)
    return Scanner(dev, info, resolution, mode)
