"""The one module that talks to SANE (through python-sane).

Callers get typed errors (`appliance.scanner.errors`) instead of `_sane.error`, a
stable identity per device (`identity.ScannerIdentity`), and pages one at a time:
`Scanner.scan()` is a generator, so the worker stores page k before asking the
feeder for page k+1 and a jam on page 7 leaves pages 1-6 safely on disk (the error
is raised after them).

Each page is read on a short-lived thread while the caller's thread watches it: the
caller gets progress (lines read) on its own thread, so it may write SQLite, and a
read that stops delivering data is cancelled and abandoned after `read_timeout`
instead of hanging the worker forever (`ScannerTimeout`). python-sane releases the
GIL inside sane_start/sane_read, and SANE allows sane_cancel() from another thread.
While it watches, the caller's thread reports progress at least every
`HEARTBEAT_S`, new lines or not: the worker's systemd watchdog is kicked only from
progress calls, and a lamp warming up or a stalled read sends no lines for far
longer than WatchdogSec.

A read that does not return even after its cancel leaves a *written-off* handle:
the backend may still be inside sane_read() on it, so nothing may close it while
that read runs (python-sane's destructor included: after a SANE re-initialisation
it would close a handle of a SANE that is gone, a segfault), and SANE is not
re-initialised while such a read is still running. Once the read has returned, the
handle is closed before SANE is (`_release_returned`).

Pages are read with python-sane's snap(), which reads `pixels x channels` bytes a
line and assumes one RGB or gray frame of 8 (or 1) bits: a backend that pads its
lines, sends three colour frames, or 16-bit samples would give a sheared or
garbled page (or make snap() read past its line buffer), so such a page is refused
with ScannerUnsupported (read and thrown away, or for 16-bit not read at all),
naming the setting to change.

SANE_CONFIG_DIR: libsane reads it at the process's first `sane.init()` (here: the
first `list_devices()` / `open_scanner()`), so set it first, e.g. with
`sane_env.use_sane_config()`. The list of backends (dll.conf) is then fixed for the
life of the process; backend files (test.conf, airscan.conf) are re-read by
`reload_sane()`. Only one process should drive a scanner (the worker); web
workers never open it, and SANE must not be initialised before a fork.

python-sane does *not* release the GIL in close() or sane.exit(): those block every
Python thread of the process until the backend returns (airscan waits for the
scanner to answer its DELETE, up to its 30 s HTTP timeout). A watchdog-pinging
thread in the worker stalls meanwhile; size WatchdogSec for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn, Protocol

import _sane
import sane
from PIL import Image

from appliance.scanner.errors import (
    ScannerBadPage,
    ScannerCancelled,
    ScannerError,
    ScannerInvalid,
    ScannerIOError,
    ScannerNoDocuments,
    ScannerNotFound,
    ScannerTimeout,
    ScannerUnsupported,
    wrap_sane_error,
)
from appliance.scanner.identity import ScannerIdentity, serial_from_name
from appliance.scanner.settings import (
    A4_MM,
    PRESETS,
    SOURCES,
    ScanSettings,
    Source,
)

__all__ = ["A4_MM", "SOURCES", "Capabilities", "DeviceInfo", "PageProgress", "Scanner",
           "list_devices", "open_scanner", "reload_sane", "resolve_device", "shutdown_sane"]

log = logging.getLogger(__name__)

# No data at all for this long and a read is abandoned. Generous: a network scanner
# warms its lamp and a feeder pulls the next sheet before the first line arrives.
READ_TIMEOUT_S = 90.0
# After cancelling a stalled read, how long the reader thread may take to return
# before the handle is written off as wedged.
CANCEL_GRACE_S = 5.0
# How long sane_close() may take before the handle is written off. sane-airscan's
# close waits for its scan job's state machine to come to rest, and once (27 Nov
# 2026, a test worker, gdb: sane_close in pthread_cond_wait, airscan's event loop
# idle in poll with no connection open) it never did, after an undecodable page:
# the worker would have stayed there, where no signal or watchdog ping gets in.
CLOSE_TIMEOUT_S = 15.0
# However long a page takes (lamp warm-up, a feeder pulling a sheet, a stall until
# READ_TIMEOUT_S), its watcher reports progress at least this often, so the worker's
# watchdog (WatchdogSec=60 in appliance-worker.service, kicked from progress calls
# only, at half its period) never fires while a live thread is watching the scanner.
# The longest silence of a read is about HEARTBEAT_S + CANCEL_GRACE_S (a stall found
# between two heartbeats, then the cancel's grace).
HEARTBEAT_S = 5.0
_POLL_S = 0.1  # how often the caller's thread looks at a running read

# Source option values, by what the appliance means. Backends disagree: the test
# backend says "Automatic Document Feeder", airscan "ADF", others "ADF Front".
_FLATBED_WORDS = ("flatbed", "platen", "normal")
_ADF_WORDS = ("adf", "feeder", "document feeder")
_COLOUR_WORDS = ("color", "colour")
_GRAY_WORDS = ("gray", "grey")


class CancelToken(Protocol):
    """Anything with is_set(), e.g. a threading.Event the screen's "stop" sets."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class PageProgress:
    """A page being read: `lines` of `total_lines` (-1 when the device does not know
    the length in advance, as with a feeder's automatic length)."""

    page: int
    lines: int
    total_lines: int

    @property
    def fraction(self) -> float | None:
        return None if self.total_lines <= 0 else min(1.0, self.lines / self.total_lines)


ProgressCallback = Callable[[PageProgress], object]


@dataclass(frozen=True)
class DeviceInfo:
    """A scanner as SANE lists it, with the serial where its backend gives one."""

    name: str
    vendor: str
    model: str
    type: str
    serial: str = ""

    @property
    def backend(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def identity(self) -> ScannerIdentity:
        """What the configuration should remember instead of `name`, which changes
        after a USB replug (see identity.py)."""
        return ScannerIdentity.of(self)


@dataclass(frozen=True)
class Capabilities:
    """What the opened device can do, so the screens show only what will work."""

    device: str
    sources: tuple[str, ...]
    modes: tuple[str, ...]
    resolutions: tuple[int, ...]  # the discrete values, or (min, max) of a range
    resolution_range: bool
    max_area_mm: tuple[float, float] | None
    presets: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def max_resolution(self) -> int:
        return max(self.resolutions) if self.resolutions else 0


def _ignore_sigpipe() -> None:
    """Put SIGPIPE back to "ignore" after libsane touched it.

    Python ignores SIGPIPE so a write to a closed socket raises EPIPE; SANE backends
    (the test backend's reader, sanei_thread) reset it to the default action, after
    which any later write to a dead peer (an MQTT broker, a browser) kills the whole
    process silently. Only the main thread may change signal dispositions.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


# Open Scanner objects of this process. libsane's state is process-wide, and
# reload_sane() would pull SANE from under an open handle; a weak set so a forgotten
# Scanner does not pin this.
_OPEN: weakref.WeakSet[Scanner] = weakref.WeakSet()


@dataclass(frozen=True)
class _WrittenOff:
    """A handle whose read did not return after its cancel (or whose close did not
    return), and the thread still inside the backend on it."""

    device: str
    dev: sane.SaneDev
    reader: threading.Thread
    what: str = "read"

    @property
    def inner(self) -> object:
        """python-sane's C object, whose destructor sane_close()s the handle."""
        return self.dev.__dict__.get("dev", self.dev)


# Written-off handles whose read (or close) may still be inside the backend. Each
# one's python-sane object also holds one reference that only `_forget` gives back:
# the interpreter's teardown clears module globals like this list, and python-sane's
# destructor would then sane_close() a handle under a running read.
_WRITTEN_OFF: list[_WrittenOff] = []
_WRITTEN_OFF_LOCK = threading.Lock()
# The written-off reads already named in the log for keeping SANE initialised: once
# each, not at every reload.
_SAID_STILL_READING: set[int] = set()


def _release_returned() -> None:
    """Close the written-off handles whose read (or close) has returned since.

    Closing is defined again once no thread is inside the backend on the handle, and
    it happens while the SANE that opened it is still up, the ordinary order (close,
    then exit), instead of leaving the open handle to sane_exit(). A handle whose
    close returned is closed already: taking it out of python-sane's object left
    nothing for its destructor to close.
    """
    for w in [w for w in _WRITTEN_OFF if not w.reader.is_alive()]:
        if not _forget(w):
            continue  # its own closer let it go meanwhile
        if w.what == "read" and not _close_handle(w.dev, w.device, cancel=False):
            continue  # its close did not return either: held again, said so
        log.info("%s: the abandoned %s returned; handle closed", w.device, w.what)


def _hold(w: _WrittenOff) -> None:
    """Keep a written-off handle until its thread has left the backend, with one
    reference to its C object that only `_forget` gives back."""
    with _WRITTEN_OFF_LOCK:
        _WRITTEN_OFF.append(w)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(w.inner))


def _forget(w: _WrittenOff) -> bool:
    """Let a held handle go, once; False if another thread did already."""
    with _WRITTEN_OFF_LOCK:
        for i, held in enumerate(_WRITTEN_OFF):
            if held is w:
                del _WRITTEN_OFF[i]
                ctypes.pythonapi.Py_DecRef(ctypes.py_object(w.inner))
                return True
    return False


def _close_handle(dev: sane.SaneDev, name: str, *, cancel: bool = True) -> bool:
    """sane_cancel (unless `cancel` is False) and sane_close on a helper thread, without
    the GIL (see _take_handle), given up after CLOSE_TIMEOUT_S; False then.

    The closing handle is in _WRITTEN_OFF from before its thread starts until its
    close returns, so shutdown_sane() never runs sane_exit() under it, from any thread
    and however this one is interrupted (red team 21: it was in no list while it
    closed, and another thread's reload could free the backend under it).
    """
    handle = _take_handle(dev)

    def work() -> None:
        if handle is not None:
            if cancel:
                _libsane().sane_cancel(handle)
            _libsane().sane_close(handle)
            return
        if cancel:
            with contextlib.suppress(_sane.error):
                dev.cancel()
        try:
            dev.close()
        except _sane.error as e:
            log.warning("closing %s: %s", name, e)

    closer = threading.Thread(target=work, name="sane-close", daemon=True)
    closing = _WrittenOff(name, dev, closer, "close")
    _hold(closing)
    closer.start()
    closer.join(CLOSE_TIMEOUT_S)
    _ignore_sigpipe()
    if closer.is_alive():
        log.error("%s: closing the scanner did not return in %.0f s; handle abandoned "
                  "(restart the worker if the scanner stays unavailable)",
                  name, CLOSE_TIMEOUT_S)
        return False
    _forget(closing)
    return True


def _take_handle(dev: sane.SaneDev) -> int | None:
    """The SANE handle of python-sane's object, taken out of it (the object then counts
    as closed: its close() and destructor do nothing, its other calls raise), or None
    where the object's layout is not the known one.

    Why: python-sane calls sane_close() (and, in some versions, sane_cancel()) holding
    the GIL, so a close that does not return freezes every thread of the process, the
    watchdog's pings and any timeout included (CLOSE_TIMEOUT_S says when it was seen).
    Taken out, the handle is closed through ctypes, which lets the GIL go. python-sane's C object is
    {PyObject_HEAD; SANE_Handle h;} (_sane.c), so h is its last pointer-sized field.
    """
    inner = dev.__dict__.get("dev", dev)
    size = ctypes.sizeof(ctypes.c_void_p)
    if type(inner).__basicsize__ != object.__basicsize__ + size:
        return None
    field = ctypes.c_void_p.from_address(id(inner) + object.__basicsize__)
    handle = field.value
    if not handle:
        return None
    field.value = None
    return handle


@functools.cache
def _libsane() -> ctypes.CDLL:
    """libsane as python-sane loaded it (dlopen hands back the same library), with the
    two calls made through it."""
    lib = ctypes.CDLL("libsane.so.1")
    for name in ("sane_cancel", "sane_close"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = None
    return lib


# Libraries that backends pull in and whose load runs bindtextdomain(), which takes
# glibc's gettext lock for writing. They are loaded once, before SANE starts, and kept
# (see _pin_libraries).
_PINNED_SONAMES = ("libgnutls.so.30", "libgpg-error.so.0", "libavahi-common.so.3")
_PINNED: list[ctypes.CDLL] = []


def _pin_libraries() -> None:
    """Load the backends' gettext-using libraries once and never let them go.

    Why: sane.exit() unloads the backends (reload_sane), and with them libraries
    only they used; loading airscan again ran gnutls's constructor again, whose
    bindtextdomain() waits for glibc's gettext lock. A backend thread cancelled
    inside gettext (SANE cancels its reader threads) leaves that lock held for
    reading for good, and the next bindtextdomain() then waits forever inside
    sane_get_devices(), where no signal or watchdog ping gets in: a test worker hung
    until killed (27 Nov, gdb: _nl_state_lock with one reader and no thread in
    gettext). Held here, they are loaded once, before any backend thread ran.
    Missing ones (another distribution, no airscan) are skipped."""
    if _PINNED:
        return
    for soname in _PINNED_SONAMES:
        try:
            _PINNED.append(ctypes.CDLL(soname))
        except OSError:
            log.debug("%s not found; not pinned", soname)


@functools.cache
def _sane_started() -> int:
    # Cached so the library is initialised once per process: libsane's dll layer
    # must not be re-initialised while a device is open.
    _pin_libraries()
    version = sane.init()
    _ignore_sigpipe()
    log.debug("SANE initialised: %s", version)
    return int(version[0])


def reload_sane() -> None:
    """Re-read the backends' configuration files (e.g. a new airscan.conf) and let
    backends that probe once per init (USB) see a replugged device.
    Closes SANE underneath every open Scanner: close them first. Does nothing while
    a written-off read is still inside the backend (see `shutdown_sane`)."""
    shutdown_sane()
    _sane_started()


def shutdown_sane() -> None:
    """Release SANE (backend threads, sockets); the next call initialises it again,
    re-reading the backends' files from the current SANE_CONFIG_DIR.

    Not while a written-off read is still running: sane_exit() would free the
    backend's state under a thread that is inside sane_read() on it. SANE then stays
    as it is (the configuration is not re-read) until that read returns or the
    worker restarts; logged once per such read. A written-off handle whose read has
    returned is closed first (`_release_returned`), while its SANE is still up."""
    if not _sane_started.cache_info().currsize:
        return
    _release_returned()
    running = _WRITTEN_OFF  # all of them still reading, after the release above
    if running:
        for w in running:
            if id(w) not in _SAID_STILL_READING:
                _SAID_STILL_READING.add(id(w))
                log.error("%s: a %s written off earlier is still inside the backend; "
                          "SANE is not re-initialised until it returns or the worker "
                          "restarts", w.device, w.what)
        return
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
    finally:
        _ignore_sigpipe()
    return [DeviceInfo(str(n), str(v), str(m), str(t), serial_from_name(str(n)))
            for n, v, m, t in raw]


def resolve_device(wanted: str, devices: Sequence[DeviceInfo]) -> DeviceInfo:
    """The device meant by `wanted`: '' = the first one, else an exact SANE name,
    else an identity (`ScannerIdentity.to_string()` or the older `a|b|c|d` form),
    so a replugged USB scanner is found again under its new name."""
    if not devices:
        raise ScannerNotFound("no scanner found", device=wanted)
    if not wanted:
        return devices[0]
    for dev in devices:
        if dev.name == wanted:
            return dev
    if ScannerIdentity.looks_like(wanted):
        try:
            found = ScannerIdentity.from_string(wanted).find(devices)
        except ValueError as e:
            raise ScannerInvalid(str(e), device=wanted) from e
        if found is not None:
            return found
    raise ScannerNotFound(f"scanner not found: {wanted}", device=wanted)


def _pick_source(values: Sequence[str], source: str) -> str | None:
    lowered = [(v, v.lower()) for v in values]
    if source == Source.FLATBED:
        return next((v for v, low in lowered if any(w in low for w in _FLATBED_WORDS)), None)
    if source == Source.DUPLEX:
        return next((v for v, low in lowered if "duplex" in low), None)
    simplex = [(v, low) for v, low in lowered if "duplex" not in low and "back" not in low]
    return next((v for v, low in simplex if any(w in low for w in _ADF_WORDS)), None)


def _pick_mode(values: Sequence[str], wanted: str) -> str | None:
    """The device's spelling of `wanted` ("Color" may be "Colour" or "24bit Color")."""
    for v in values:
        if v.lower() == wanted.lower():
            return v
    words = _COLOUR_WORDS if any(w in wanted.lower() for w in _COLOUR_WORDS) else _GRAY_WORDS
    return next((v for v in values if any(w in v.lower() for w in words)), None)


class _WrittenOffHandle:
    """Stands in for a written-off handle in its Scanner: any use is a typed error
    instead of a call into a backend that may be inside sane_read() on it, or (after
    SANE was re-initialised) into a handle of a SANE that is gone."""

    def __init__(self, device: str) -> None:
        self._device = device

    def __getattr__(self, name: str) -> NoReturn:
        raise ScannerTimeout(f"{self._device}: an earlier read never returned; "
                             "open the scanner again", device=self._device)


def _unreadable(params: tuple[Any, ...]) -> str | None:
    """What makes a page with these (post-start) parameters one that python-sane's
    snap() would garble, or None when it reads it exactly.

    snap() reads `pixels x channels` bytes a line whatever bytes_per_line says, so a
    padded line shears the page; it mis-assembles separate red/green/blue frames; it
    reads 16-bit samples past its line buffer; its 1-bit colour layout is its own.
    What it reads right: one gray or RGB frame of 8-bit samples, or 1-bit gray
    (lineart), with no padding.
    """
    fmt, last_frame, (pixels, _lines), depth, bytes_per_line = params
    if fmt not in ("gray", "color") or not last_frame:
        return ("colour as separate red, green and blue passes (three-pass); choose a "
                "one-pass colour mode or Gray")
    channels = 1 if fmt == "gray" else 3
    if depth == 8:
        expected = pixels * channels
    elif depth == 1 and channels == 1:
        expected = (pixels + 7) // 8
    else:
        return (f"{depth}-bit {'gray' if channels == 1 else 'colour'} samples; choose "
                "8-bit depth with the Color or Gray mode")
    if bytes_per_line != expected:
        return (f"lines of {bytes_per_line} bytes for {pixels} pixels (padded lines); "
                "choose another mode or resolution on this scanner")
    return None


class _Read:
    """One page being read on a helper thread; the caller's thread watches it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lines = 0
        self.total = -1
        self.last_data = time.monotonic()
        self.result: Image.Image | None = None
        self.error: BaseException | None = None

    def on_line(self, lines: int, total: int) -> None:
        # Called by python-sane with the GIL for every line: keep it tiny.
        self.lines = lines
        self.total = total
        self.last_data = time.monotonic()


class Scanner:
    """An open SANE device. Use as a context manager; one scan at a time.

    `resolution` and `mode` are the defaults for `scan(source)`; with a
    `ScanSettings` (a preset) `resolution` stays a floor.
    """

    def __init__(self, dev: sane.SaneDev, info: DeviceInfo, resolution: int, mode: str,
                 *, read_timeout: float = READ_TIMEOUT_S,
                 page_timeout: float | None = None) -> None:
        self._dev = dev
        self.info = info
        self.resolution = resolution
        self.mode = mode
        self.read_timeout = read_timeout
        self.page_timeout = page_timeout
        self._closed = False
        # A read did not return after its cancel: the handle is written off
        # (`_write_off`) and this Scanner unusable.
        self._wedged = False
        _OPEN.add(self)

    @property
    def identity(self) -> ScannerIdentity:
        serial = self.info.serial or self.serial()
        return ScannerIdentity.of(DeviceInfo(self.info.name, self.info.vendor,
                                             self.info.model, self.info.type, serial))

    # --- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        if self._wedged:
            # sane_close() while another thread is inside sane_read() is undefined
            # behaviour in every backend; leaking one handle is the lesser harm.
            log.error("%s: not closing a handle whose read never returned", self.info.name)
            return
        # On a helper thread, watched from this one: a close that never returns must
        # not take the caller with it.
        if not _close_handle(self._dev, self.info.name):
            self._wedged = True

    @property
    def closed(self) -> bool:
        return self._closed

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

    def _has(self, option: str) -> bool:
        opt = self._dev.opt.get(option)
        return opt is not None and opt.is_active()

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

    def serial(self) -> str:
        """A serial number the backend exposes as a read-only option, or ''."""
        for name, opt in self._dev.opt.items():
            if "serial" in name and opt.type == _sane.TYPE_STRING:
                with contextlib.suppress(_sane.error, AttributeError):
                    value = getattr(self._dev, name)
                    if value:
                        return str(value).strip()
        return ""

    def sources(self) -> list[str]:
        """The appliance's names ("flatbed", "adf", "duplex") this device offers."""
        values = self._constraint("source")
        if not isinstance(values, list):
            return [Source.FLATBED.value]
        found = [s for s in SOURCES if _pick_source([str(v) for v in values], s)]
        if Source.ADF in found and Source.DUPLEX not in found and self._duplex_switch():
            found.append(Source.DUPLEX.value)
        return found

    def _duplex_switch(self) -> tuple[str, Any] | None:
        """Backends that keep duplex apart from the source: epson2's `adf-mode`
        (Simplex/Duplex), HPLIP's boolean `duplex`."""
        values = self._constraint("adf_mode")
        if isinstance(values, list):
            duplex = next((v for v in values if "duplex" in str(v).lower()), None)
            if duplex is not None:
                return "adf_mode", duplex
        opt = self._dev.opt.get("duplex")
        if opt is not None and opt.type == _sane.TYPE_BOOL:
            return "duplex", True
        return None

    def capabilities(self) -> Capabilities:
        """Sources, modes, resolutions, the largest area and the presets this device
        can honour. Read from the option constraints as they stand now (the source
        in effect decides the area on some backends)."""
        modes_c = self._constraint("mode")
        modes = tuple(str(m) for m in modes_c) if isinstance(modes_c, list) else ()
        res_c = self._constraint("resolution")
        if isinstance(res_c, list):
            resolutions, is_range = tuple(sorted(int(r) for r in res_c)), False
        elif isinstance(res_c, tuple) and len(res_c) == 3:
            resolutions, is_range = (int(res_c[0]), int(res_c[1])), True
        else:
            resolutions, is_range = (), False
        area: tuple[float, float] | None = None
        br_x, br_y = self._constraint("br_x"), self._constraint("br_y")
        if isinstance(br_x, tuple) and isinstance(br_y, tuple):
            area = (float(br_x[1]), float(br_y[1]))
        sources = tuple(self.sources())
        caps = Capabilities(self.info.name, sources, modes, resolutions, is_range, area)
        supported = tuple(name for name, p in PRESETS.items()
                          if self._can(caps, p.settings.at_least(self.resolution)))
        return Capabilities(self.info.name, sources, modes, resolutions, is_range, area,
                            supported)

    @staticmethod
    def _can(caps: Capabilities, settings: ScanSettings) -> bool:
        if settings.source not in caps.sources:
            return False
        if caps.modes and _pick_mode(caps.modes, settings.mode) is None:
            return False
        if caps.resolutions and caps.max_resolution() < settings.resolution:
            return False
        if caps.max_area_mm is not None:
            # Half a millimetre of slack: eSCL sizes are 1/300 inch, A4 is 296.97+.
            far = settings.far_corner_mm
            if far[0] > caps.max_area_mm[0] + 0.5 or far[1] > caps.max_area_mm[1] + 0.5:
                return False
        return True

    def _select_source(self, source: Source) -> None:
        values = self._constraint("source")
        if not isinstance(values, list):
            if source.feeder:
                raise ScannerUnsupported("this scanner has no document feeder",
                                         device=self.info.name)
            return
        str_values = [str(v) for v in values]
        value = _pick_source(str_values, source)
        switch = None
        if value is None and source == Source.DUPLEX:
            switch = self._duplex_switch()
            value = _pick_source(str_values, Source.ADF) if switch else None
        if value is None:
            raise ScannerUnsupported(f"{self.info.name} offers no {source} (has {values})",
                                     device=self.info.name)
        self._set("source", value)
        if switch is not None:
            self._set(*switch)
        elif source == Source.ADF:
            with contextlib.suppress(ScannerError):  # back to one side if left on
                plain = self._duplex_switch()
                if plain is not None and plain[0] == "adf_mode":
                    simplex = next((v for v in self._constraint("adf_mode")
                                    if "simplex" in str(v).lower()), None)
                    if simplex is not None:
                        self._set("adf_mode", simplex)
                elif plain is not None:
                    self._set("duplex", False)

    def _select_mode(self, mode: str) -> None:
        if not self._has("mode"):
            return
        values = self._constraint("mode")
        chosen = _pick_mode([str(v) for v in values], mode) if isinstance(values, list) else mode
        if chosen is None:
            raise ScannerUnsupported(f"{self.info.name} has no {mode} mode (has {values})",
                                     device=self.info.name)
        self._set("mode", chosen)

    def _select_resolution(self, wanted: int) -> int:
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

    def _select_geometry(self, settings: ScanSettings) -> None:
        # Last, after source, mode and resolution: switching source resets the window
        # on some backends (airscan), which would otherwise scan the feeder's default
        # area. br_* before tl_*, so the window never turns negative on the way.
        (x0, y0), (x1, y1) = settings.offset_mm, settings.far_corner_mm
        for option, value in (("br_x", x1), ("br_y", y1), ("tl_x", x0), ("tl_y", y0)):
            if not self._has(option):
                continue
            constraint = self._constraint(option)
            if isinstance(constraint, tuple) and len(constraint) == 3:
                value = max(float(constraint[0]), min(float(constraint[1]), value))
            self._set(option, float(value))

    def _prepare(self, settings: ScanSettings) -> int:
        self._select_source(settings.source)
        self._select_mode(settings.mode)
        if self._has("depth"):
            with contextlib.suppress(ScannerError):
                self._set("depth", 8)
        chosen = self._select_resolution(settings.resolution)
        self._select_geometry(settings)
        return chosen

    def settings_for(self, source: str | ScanSettings,
                     page_mm: tuple[float, float] | None = None) -> ScanSettings:
        """`source` as settings: a bare source name takes this scanner's resolution
        and mode; given settings keep theirs, with the resolution raised to this
        scanner's (the configured floor)."""
        if isinstance(source, ScanSettings):
            return source.at_least(self.resolution)
        try:
            src = Source(source)
        except ValueError as e:
            raise ScannerInvalid(f"unknown source {source!r}", device=self.info.name) from e
        return ScanSettings(src, self.resolution, self.mode, page_mm or A4_MM)

    # --- scanning --------------------------------------------------------------------

    def scan(self, source: str | ScanSettings = "flatbed", *,
             page_mm: tuple[float, float] | None = None,
             cancel: CancelToken | None = None,
             progress: ProgressCallback | None = None) -> Iterator[Image.Image]:
        """Yield pages one by one as they leave the device.

        Flatbed: one page. Feeder: until it is empty; an empty feeder before the
        first page raises ScannerNoDocuments. Duplex: front, back, front, back ...
        as the device delivers them, each page marked with `info["side"]`.
        Any fault is raised after the pages already yielded, with `pages_done` set,
        so the caller keeps those pages. `cancel` is looked at before each page: once
        set, the batch is cancelled on the device and ScannerCancelled raised (pages
        so far kept). `progress` is called on the caller's thread while a page is
        read. Closing the generator early also cancels the batch.
        """
        settings = self.settings_for(source, page_mm)
        if self._closed:
            raise ScannerInvalid("scanner is closed", device=self.info.name)
        if self._wedged:
            raise ScannerTimeout(f"{self.info.name}: an earlier read never returned",
                                 device=self.info.name)
        dpi = self._prepare(settings)
        expected = (settings.page_mm[0] / 25.4 * dpi, settings.page_mm[1] / 25.4 * dpi)
        pages = 0
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    with contextlib.suppress(_sane.error):
                        self._dev.cancel()
                    raise ScannerCancelled(
                        f"{self.info.name}: cancelled after {pages} page(s)",
                        device=self.info.name, pages_done=pages)
                try:
                    image = self._read_page(pages + 1, settings.source.feeder, progress)
                except ScannerNoDocuments as err:
                    if pages > 0 and settings.source.feeder:
                        return  # the feeder is empty: the batch is complete
                    err.pages_done = pages
                    raise
                except ScannerError as err:
                    err.pages_done = pages
                    raise
                self._check_size(image, expected, pages)
                pages += 1
                image.info["dpi"] = (dpi, dpi)
                image.info["page"] = pages
                back = settings.source == Source.DUPLEX and pages % 2 == 0
                image.info["side"] = "back" if back else "front"
                log.debug("%s: page %d (%dx%d, %s)", self.info.name, pages, *image.size,
                          image.info["side"])
                yield image
                if not settings.source.feeder:
                    return
        finally:
            # Also runs when the caller stops early or the generator is collected after
            # close(): then the handle is gone and close() has already cancelled.
            if not self._closed and not self._wedged:
                with contextlib.suppress(_sane.error):
                    self._dev.cancel()

    def _check_size(self, image: Image.Image, expected: tuple[float, float],
                    pages: int) -> None:
        """Refuse an impossible page (none, or much larger than the area asked for);
        shorter is fine: feeders with automatic length stop at the paper's end."""
        width, height = image.size
        if width < 1 or height < 1 or width > expected[0] * 1.1 + 16 \
                or height > expected[1] * 1.1 + 16:
            raise ScannerBadPage(
                f"{self.info.name}: page {pages + 1} is {width}x{height} px, expected at "
                f"most {expected[0]:.0f}x{expected[1]:.0f}", device=self.info.name,
                pages_done=pages)

    def _read_page(self, page: int, feeder: bool,
                   progress: ProgressCallback | None) -> Image.Image:
        """sane_start + the whole page on a helper thread, watched from this one."""
        read = _Read()

        def work() -> None:
            try:
                self._dev.start()
                read.last_data = time.monotonic()
                # After start: the parameters before it are only estimates (SANE).
                params = self._dev.get_parameters()
                problem = _unreadable(params)
                if problem is None:
                    read.result = self._dev.snap(no_cancel=feeder, progress=read.on_line)
                    return
                if params[3] != 16:  # snap() would read 16-bit lines past its buffer
                    # The page is read to its end and thrown away rather than
                    # cancelled the instant it started: the sheet is pulled already,
                    # the device ends the batch in its usual state, and SANE's `test`
                    # backend, whose reader thread such a cancel kills while it starts
                    # up, was seen to leave later scans of the process hanging.
                    self._dev.snap(no_cancel=feeder, progress=read.on_line)
                raise ScannerUnsupported(
                    f"{self.info.name}: page {page} not kept: the scanner sends "
                    f"{problem}", device=self.info.name)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                read.error = e
            finally:
                read.done.set()

        reader = threading.Thread(target=work, name=f"sane-read-{page}", daemon=True)
        started = last_report = time.monotonic()
        reader.start()
        # Nothing said until data flows or HEARTBEAT_S has passed: no "page 3" for a
        # feeder that answers "empty" at once.
        reported = 0
        abandoned = False
        try:
            while not read.done.wait(_POLL_S):
                now = time.monotonic()
                if progress is not None and (read.lines != reported
                                             or now - last_report >= HEARTBEAT_S):
                    # The same counts again when nothing came: a heartbeat from the
                    # thread that enforces the timeout, so the worker stays alive
                    # exactly as long as something is watching the scanner.
                    reported, last_report = read.lines, now
                    progress(PageProgress(page, read.lines, read.total))
                stalled = now - read.last_data > self.read_timeout
                too_long = self.page_timeout is not None and now - started > self.page_timeout
                if stalled or too_long:
                    why = (f"no data for {now - read.last_data:.0f} s" if stalled
                           else f"page took over {self.page_timeout:.0f} s")
                    abandoned = True
                    self._abandon(reader, page, why)
        except BaseException:
            # The progress callback failed, or an interrupt: never leave a reader
            # running under a handle the caller is about to close. Not after
            # _abandon's own ScannerTimeout: that read is cancelled already.
            if not abandoned and reader.is_alive():
                with contextlib.suppress(ScannerTimeout):
                    self._abandon(reader, page, "the scan was interrupted")
            raise
        finally:
            _ignore_sigpipe()
        if read.error is not None:
            e = read.error
            if isinstance(e, _sane.error):
                raise wrap_sane_error(e, device=self.info.name,
                                      context=f"page {page}") from e
            if isinstance(e, RuntimeError):  # python-sane: "Scanner returned no data"
                raise ScannerIOError(f"{self.info.name}: page {page}: {e}",
                                     device=self.info.name) from e
            raise e
        assert read.result is not None
        if progress is not None:
            progress(PageProgress(page, read.lines, read.total))
        return read.result

    def _abandon(self, reader: threading.Thread, page: int, why: str) -> NoReturn:
        """Cancel a read that stopped delivering; raise ScannerTimeout either way.
        Silent for at most CANCEL_GRACE_S (the watchdog budget counts on it)."""
        log.error("%s: page %d: %s; cancelling the read", self.info.name, page, why)
        try:
            with contextlib.suppress(_sane.error):
                self._dev.cancel()
            reader.join(CANCEL_GRACE_S)
        finally:
            if reader.is_alive():
                self._write_off(reader)
        raise ScannerTimeout(f"{self.info.name}: page {page}: {why}", device=self.info.name)

    def _write_off(self, reader: threading.Thread) -> None:
        """Give up a handle whose read did not return after its cancel, for good.

        The backend may still be inside sane_read() on it, so no one may close it:
        not close(), and not python-sane's destructor, which would sane_close() it
        when this Scanner is collected (after a SANE re-initialisation: a handle of
        a SANE that is gone, a segfault). So the handle moves to `_WRITTEN_OFF`, its
        C object gets one reference that nothing but `_forget` gives back
        (the interpreter's teardown clears module globals, the list included), and
        this Scanner keeps a stand-in that answers every use with ScannerTimeout.
        shutdown_sane() keeps SANE initialised while the read is still running, and
        closes the handle once it has returned.
        """
        self._wedged = True
        dev = self._dev
        if isinstance(dev, _WrittenOffHandle):
            return
        _hold(_WrittenOff(self.info.name, dev, reader))
        self._dev = _WrittenOffHandle(self.info.name)  # type: ignore[assignment]
        log.error("%s: the read did not return %.0f s after cancel; handle abandoned",
                  self.info.name, CANCEL_GRACE_S)


def open_scanner(name: str = "", resolution: int = 200, mode: str = "Color", *,
                 read_timeout: float = READ_TIMEOUT_S,
                 page_timeout: float | None = None) -> Scanner:
    """Open a scanner by SANE name or identity ('' = the first one listed).

    Mode and resolution are applied for each scan, after the source is chosen. An
    identity not in the list (a USB scanner replugged since SANE started) gets one
    more look after SANE is re-initialised, when no other handle is open.
    """
    _sane_started()
    _release_returned()  # a replugged scanner's old handle, once its read returned
    info: DeviceInfo | None = None
    if not name or ScannerIdentity.looks_like(name):
        try:
            info = resolve_device(name, list_devices())
        except ScannerNotFound:
            if _OPEN:
                raise
            log.info("scanner %r not listed; re-initialising SANE and looking again",
                     name or "(any)")
            reload_sane()
            info = resolve_device(name, list_devices())
        name = info.name
    try:
        dev = sane.open(name)
    except _sane.error as e:
        err = wrap_sane_error(e, device=name, context="opening")
        if isinstance(err, ScannerInvalid):
            # SANE answers an unknown device name with "Invalid argument".
            raise ScannerNotFound(f"scanner not found: {name}", device=name) from e
        raise err from e
    finally:
        _ignore_sigpipe()
    if info is None:
        info = DeviceInfo(name, "", "", "", serial_from_name(name))
        with contextlib.suppress(ScannerError):
            info = next((d for d in list_devices() if d.name == name), info)
    return Scanner(dev, info, resolution, mode, read_timeout=read_timeout,
                   page_timeout=page_timeout)
