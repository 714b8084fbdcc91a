"""Which scanner is "ours", in a form that survives a replug, a power cycle and a
reordered SANE configuration.

A SANE device name is volatile: a USB scanner is `fujitsu:libusb:001:007` today and
`fujitsu:libusb:003:012` after it was replugged into another port (the most common
"scanner vanished" complaint against scanservjs), and airscan numbers its entries
`e0`, `e1` ... in configuration order. So the appliance remembers vendor, model and,
where the backend gives one, the serial number; the name without its volatile parts
is kept only as a tie-breaker between two identical models without serials.

SANE has no field for a serial number. Some backends put it in the device name
(HPLIP's `hpaio:/usb/...?serial=XXXX`, pixma's `pixma:04A9176D_SERIAL`), a few expose
a read-only option; `serial_from_name` knows the former, `Scanner.serial()` the latter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

PREFIX = "scanner:"

# Parts of SANE device names that change when the same scanner is replugged or the
# configuration is reordered: USB bus/device numbers, airscan's entry index.
_VOLATILE_NAME_PARTS = (
    (re.compile(r"libusb:\d+:\d+"), "libusb"),
    (re.compile(r"^airscan:[ew]\d+:"), "airscan:"),
    (re.compile(r"/dev/bus/usb/\d+/\d+"), "usb"),
    (re.compile(r"bus\d+;dev\d+"), "usb"),  # brother4/brother5
)

_SERIAL_IN_NAME = (
    re.compile(r"[?&]serial=([A-Za-z0-9._-]+)"),  # hpaio (HPLIP)
    re.compile(r"^pixma:[0-9A-Fa-f]{8}_([A-Za-z0-9]+)$"),  # pixma USB: VID+PID_serial
)


class _Listed(Protocol):
    """What a device listing offers (DeviceInfo); a protocol to keep this module
    free of SANE."""

    @property
    def name(self) -> str: ...
    @property
    def vendor(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def serial(self) -> str: ...


D = TypeVar("D", bound=_Listed)

def serial_from_name(name: str) -> str:
    """The serial number a backend wrote into the device name, or ''."""
    for pattern in _SERIAL_IN_NAME:
        found = pattern.search(name)
        if found:
            return found.group(1)
    return ""


def stable_name(name: str) -> str:
    """The SANE name without the parts that change on a replug or a reorder."""
    for pattern, replacement in _VOLATILE_NAME_PARTS:
        name = pattern.sub(replacement, name)
    return name


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True)
class ScannerIdentity:
    """The scanner the appliance was set up with: vendor + model + serial, plus the
    backend and stable name as tie-breakers. Stored as one string in the config."""

    vendor: str
    model: str
    serial: str = ""
    backend: str = ""
    hint: str = ""  # stable_name() of the device when it was chosen

    @classmethod
    def of(cls, device: _Listed) -> ScannerIdentity:
        return cls(device.vendor, device.model, device.serial,
                   device.name.split(":", 1)[0], stable_name(device.name))

    def to_string(self) -> str:
        """`scanner:vendor=...&model=...&serial=...`: printable, one line, and
        unambiguous whatever characters a vendor puts in a model name."""
        fields = {"vendor": self.vendor, "model": self.model, "serial": self.serial,
                  "backend": self.backend, "hint": self.hint}
        return PREFIX + urlencode({k: v for k, v in fields.items() if v}, quote_via=quote)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> ScannerIdentity:
        """Parse `to_string()`'s form, or the older `backend|vendor|model|stable-name`
        that earlier configurations stored."""
        text = text.strip()
        if text.startswith(PREFIX):
            fields = dict(parse_qsl(text[len(PREFIX):], keep_blank_values=True))
            unknown = set(fields) - {"vendor", "model", "serial", "backend", "hint"}
            if unknown or not fields.get("model"):
                raise ValueError(f"not a scanner identity: {text!r}")
            return cls(fields.get("vendor", ""), fields["model"], fields.get("serial", ""),
                       fields.get("backend", ""), fields.get("hint", ""))
        parts = text.split("|")
        if len(parts) == 4 and parts[2]:
            backend, vendor, model, hint = parts
            return cls(vendor, model, serial_from_name(hint), backend, hint)
        raise ValueError(f"not a scanner identity: {text!r}")

    @staticmethod
    def looks_like(text: str) -> bool:
        """Whether a configured `device` value is an identity rather than a SANE name."""
        return text.startswith(PREFIX) or text.count("|") == 3

    def matches(self, device: _Listed) -> bool:
        """Same vendor and model, and the same serial where both sides know one."""
        if not (_same(self.vendor, device.vendor) and _same(self.model, device.model)):
            return False
        return not (self.serial and device.serial) or self.serial == device.serial

    def find(self, devices: Sequence[D]) -> D | None:
        """The listed device this identity means, or None.

        With a serial, only that unit. Without one, two identical models are told
        apart by the stable name (same port type, same airscan entry name), then by
        backend; if still tied, the first listed (SANE's own order is stable for a
        given set of plugged devices).
        """
        candidates = [d for d in devices if self.matches(d)]
        if self.serial:
            exact = [d for d in candidates if d.serial == self.serial]
            candidates = exact or [d for d in candidates if not d.serial]
        if not candidates:
            return None

        def score(d: D) -> tuple[int, int]:
            return (int(bool(self.hint) and stable_name(d.name) == self.hint),
                    int(bool(self.backend) and d.name.split(":", 1)[0] == self.backend))

        return max(candidates, key=score)  # max() keeps the first among equals
