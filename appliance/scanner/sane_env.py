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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

ENV_VAR = "SANE_CONFIG_DIR"
KNOWN_BACKENDS: frozenset[str] = frozenset({"airscan", "test", "pnm", "escl", "net"})

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
) -> Path:
    """Write dll.conf (only `backends`), test.conf sized for A4, and airscan.conf
    with the fixed device(s) into `config_dir`; returns `config_dir`.

    `airscan_url` (with `airscan_name`) adds one device, `airscan_devices` more;
    the names become SANE device names `airscan:e<N>:<name>` in that order.
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
    return config_dir


def use_sane_config(config_dir: Path) -> None:
    """Point this process (and its children) at `config_dir`. Must run before the
    process's first sane.init(); see the module docstring."""
    os.environ[ENV_VAR] = str(Path(config_dir).resolve())
