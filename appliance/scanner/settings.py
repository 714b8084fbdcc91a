"""Scan settings and the one-tap presets, as data.

Decree 30/2020 (Annex I, II.I.2) asks for colour, at least 200 dpi and 100 % scale,
so every preset is colour, never below 200 dpi, and scans the paper's real size
(the appliance never resamples: the dpi stored with a page is the dpi it was read
at). A preset names what the person at the kiosk has in hand, not SANE options;
`Scanner.capabilities()` says which presets the opened device can do, so a button
the device cannot honour is never shown (and never offered only to fail).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

MIN_DPI = 200  # Decree 30/2020: at least 200 dpi
A4_MM: tuple[float, float] = (210.0, 297.0)
# An ID-1 card (CCCD) is 85.6 x 53.98 mm; the area leaves room for placing it
# by hand against the glass's corner mark.
ID_CARD_AREA_MM: tuple[float, float] = (100.0, 70.0)


class Source(StrEnum):
    """Where the paper is, in the appliance's words (backends spell it their way)."""

    FLATBED = "flatbed"
    ADF = "adf"
    DUPLEX = "duplex"  # the feeder, both sides of each sheet: front, back, front ...

    @property
    def feeder(self) -> bool:
        return self is not Source.FLATBED


SOURCES: tuple[str, ...] = tuple(s.value for s in Source)


@dataclass(frozen=True)
class ScanSettings:
    """What one batch is scanned with. Resolution is a floor: a device offering
    only 150/300 dpi scans a 200 dpi request at 300, never at 150."""

    source: Source = Source.FLATBED
    resolution: int = MIN_DPI
    mode: str = "Color"
    page_mm: tuple[float, float] = A4_MM
    offset_mm: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Source(self.source))
        if self.resolution < 1:
            raise ValueError(f"resolution must be positive, not {self.resolution}")
        if min(self.page_mm) <= 0 or min(self.offset_mm) < 0:
            raise ValueError(f"bad scan area {self.offset_mm} + {self.page_mm}")

    def at_least(self, resolution: int) -> ScanSettings:
        """These settings with the resolution raised to `resolution` if lower (the
        configured resolution is a floor for every preset)."""
        return self if self.resolution >= resolution else replace(self, resolution=resolution)

    @property
    def far_corner_mm(self) -> tuple[float, float]:
        return (self.offset_mm[0] + self.page_mm[0], self.offset_mm[1] + self.page_mm[1])


@dataclass(frozen=True)
class Preset:
    """A one-tap button: its name (stable, stored with jobs), the label's message
    key (translated by the web) and its settings."""

    name: str
    label_key: str
    settings: ScanSettings


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # 300 dpi: the card's 12-digit number and QR code are small print.
    Preset("cccd", "scanner.preset.cccd",
           ScanSettings(Source.FLATBED, 300, page_mm=ID_CARD_AREA_MM)),
    Preset("a4_form", "scanner.preset.a4_form", ScanSettings(Source.FLATBED)),
    Preset("feeder_batch", "scanner.preset.feeder_batch", ScanSettings(Source.ADF)),
    Preset("duplex", "scanner.preset.duplex", ScanSettings(Source.DUPLEX)),
)}


def preset(name: str) -> Preset:
    """The preset called `name`; ValueError names the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None
