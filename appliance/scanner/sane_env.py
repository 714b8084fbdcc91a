"""A private SANE configuration folder for the appliance.

Debian's /etc/sane.d enables ~80 backends; several probe the network on every
listing (`scanimage -L` takes 3.4 s with no scanner attached), and `test`/`pnm`
are commented out. The appliance therefore points SANE_CONFIG_DIR at a folder
of its own listing only the backends it wants, without touching /etc.

How libsane reads it (libsane 1.2.1, checked here): the dll layer reads
SANE_CONFIG_DIR and dll.conf once per process, at the first `sane.init()`, and
keeps that for the life of the process; each backend reads its own .conf
(test.conf, airscan.conf) again whenever it is loaded anew, i.e. after
`sane.exit()` + `sane.init()`. So: set the variable before anything in the
process touches SANE, and re-initialise (see device.reload_sane) after rewriting
a backend's file.

USB backends find nothing without their own .conf (fujitsu.conf, epson2.conf ... list
the USB ids to probe), so those are copied from the system's folder. The shipped
reference is provisioning/sane/ (dll.conf, airscan.conf); `APPLIANCE_BACKENDS` is
the same list in code, and a test keeps the two equal. Measured here (libsane 1.2.1,
no scanner attached, 2 shared cores): listing devices takes about 3.4 s with Debian's
/etc/sane.d and tens of milliseconds with this configuration (see
`without_network_probes`); `appliance scanner list --compare-system` measures it on
the device itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

ENV_VAR = "SANE_CONFIG_DIR"
SYSTEM_CONFIG_DIR = Path("/etc/sane.d")

# The USB backends (all in Debian's libsane1) of the office document scanners a
# one-stop counter is likely to have: Fujitsu fi/ScanSnap (fujitsu, epjitsu), Canon
# imageFORMULA DR (canon_dr) and MFPs (pixma), Epson WorkForce/DS (epson2, epsonds),
# Avision and its HP/Plustek rebrands (avision), Panasonic KV-S (kvs1025, kvs20xx,
# kvs40xx), Kodak i-series (kodak), Canon LiDE / Plustek flatbeds (genesys, plustek),
# Samsung/Xerox/Dell MFPs (xerox_mfp). None of them probes the network.
OFFICE_USB_BACKENDS: tuple[str, ...] = (
    "fujitsu", "epjitsu", "canon_dr", "pixma", "epson2", "epsonds", "avision",
    "kvs1025", "kvs20xx", "kvs40xx", "kodak", "genesys", "plustek", "xerox_mfp",
)
# What the appliance loads in production: eSCL/AirScan network scanners through
# airscan (not also `escl`, which would list every such scanner twice), then USB.
APPLIANCE_BACKENDS: tuple[str, ...] = ("airscan", *OFFICE_USB_BACKENDS)
# For tests and the technician's drills only: `test` produces every SANE status,
# `pnm` returns a file pixel for pixel.
TEST_BACKENDS: tuple[str, ...] = ("test", "pnm")
KNOWN_BACKENDS: frozenset[str] = frozenset(
    {*APPLIANCE_BACKENDS, *TEST_BACKENDS, "escl", "net"})
# Backends whose file this module writes itself.
_WRITTEN = frozenset({"airscan", "test"})

# Raised from the stock 200 mm so an A4 page (210 x 297 mm) fits; the rest keeps
# a scan fast (8-bit colour) and looks like a page rather than solid black.
_TEST_CONF = """\
# Written by the appliance: SANE test backend, sized for A4.
number_of_devices 2
mode Color
depth 8
resolution_min 1.0
resolution_max 1200.0
resolution_quant 1.0
resolution 200.0
test-picture "Grid"
read-limit false
read-delay false
read-status-code "Default"
geometry_min 0.0
geometry_max 300.0
geometry_quant 1.0
tl_x 0.0
tl_y 0.0
br_x 210.0
br_y 297.0
"""


def _quote(name: str) -> str:
    if any(c in name for c in '"\n\r'):
        raise ValueError(f"scanner name may not contain quotes or newlines: {name!r}")
    return f'"{name}"'


def airscan_conf(devices: Sequence[tuple[str, str]]) -> str:
    """airscan.conf text for fixed eSCL devices with discovery off: a kiosk must
    not pick up whichever printer happens to share its network."""
    lines = ["# Written by the appliance: fixed eSCL devices, no discovery.", "[devices]"]
    for name, url in devices:
        if not url.startswith(("http://", "https://", "unix://")):
            raise ValueError(f"not an eSCL URL: {url!r}")
        lines.append(f"{_quote(name)} = {url}, escl")
    lines += ["", "[options]", "discovery = disable", "model = network", ""]
    return "\n".join(lines)


def write_sane_config(
    config_dir: Path,
    *,
    airscan_url: str | None = None,
    airscan_name: str = "BHXH Demo Scanner",
    backends: Sequence[str] = ("airscan",),
    airscan_devices: Sequence[tuple[str, str]] = (),
    system_dir: Path = SYSTEM_CONFIG_DIR,
) -> Path:
    """Write dll.conf (only `backends`), test.conf sized for A4, and airscan.conf
    with the fixed device(s) into `config_dir`; copy the other backends' own files
    from `system_dir` (USB backends need their lists of ids); returns `config_dir`.

    `airscan_url` (with `airscan_name`) adds one device, `airscan_devices` more;
    the names become SANE device names `airscan:e<N>:<name>` in that order.
    `backends=APPLIANCE_BACKENDS` is the production set.
    """
    unknown = [b for b in backends if b not in KNOWN_BACKENDS]
    if unknown:
        raise ValueError(f"unknown SANE backend(s): {', '.join(unknown)}")
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    dll = "# Written by the appliance: only these backends are loaded.\n"
    dll += "".join(f"{b}\n" for b in dict.fromkeys(backends))
    (config_dir / "dll.conf").write_text(dll, encoding="utf-8")
    if "test" in backends:
        (config_dir / "test.conf").write_text(_TEST_CONF, encoding="utf-8")
    if "airscan" in backends:
        devices = list(airscan_devices)
        if airscan_url:
            devices.insert(0, (airscan_name, airscan_url))
        (config_dir / "airscan.conf").write_text(airscan_conf(devices), encoding="utf-8")
    for backend in backends:
        source = Path(system_dir) / f"{backend}.conf"
        if backend not in _WRITTEN and source.is_file():
            text = source.read_text(encoding="utf-8", errors="replace")
            (config_dir / source.name).write_text(without_network_probes(backend, text),
                                                  encoding="utf-8")
    return config_dir


def without_network_probes(backend: str, text: str) -> str:
    """A USB backend's .conf with its network probing switched off.

    Measured here: epson2's `net autodiscovery` costs 1.0 s and pixma's BJNP
    network scan 0.5 s on every listing, with nothing on the network to find; the
    other USB backends together take about 20 ms. A network scanner is reached
    through airscan (eSCL) instead, by a fixed address.
    """
    lines = [f"# (off: network probing) {ln}" if ln.strip().startswith("net autodiscovery")
             else ln for ln in text.splitlines()]
    if backend == "pixma":
        lines.append("networking=no")
    return "\n".join(["# Copied by the appliance, network probing off.", *lines, ""])


def shipped_dll_conf() -> list[str]:
    """The backends listed in provisioning/sane/dll.conf, in order (the file the
    install script puts on a device)."""
    path = Path(__file__).resolve().parents[2] / "provisioning" / "sane" / "dll.conf"
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def use_sane_config(config_dir: Path) -> None:
    """Point this process (and its children) at `config_dir`. Must run before the
    process's first sane.init(); see the module docstring."""
    os.environ[ENV_VAR] = str(Path(config_dir).resolve())
