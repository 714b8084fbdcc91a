"""`appliance scanner list`, `scanner test` and `scanner write-config`: what a field
technician runs at the counter when "the scanner does not work" (and at install).

`list` says what SANE found, by which backend, with the identity the appliance
would remember, and how long starting SANE and listing took (with
`--compare-system`, also with Debian's /etc/sane.d, to show what the minimal
configuration saves). `test` opens the configured scanner (or `--device`), reads its
capabilities and scans one batch, timing each step; a fault ends it with the same
message key the kiosk would show. Both read the configuration (`--config`) for the
SANE folder and the device, and must not run while the worker holds the scanner.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.scanner.sane_env import (
    APPLIANCE_BACKENDS,
    ENV_VAR,
    SYSTEM_CONFIG_DIR,
    TEST_BACKENDS,
    write_sane_config,
)
from appliance.scanner.settings import PRESETS, SOURCES

# Run in a child process: SANE_CONFIG_DIR is read once per process.
_TIME_LISTING = """
import json, sys, time
t0 = time.perf_counter()
import sane
t1 = time.perf_counter()
sane.init()
t2 = time.perf_counter()
devices = sane.get_devices()
t3 = time.perf_counter()
sane.exit()
print(json.dumps({"import_s": t1 - t0, "init_s": t2 - t1, "list_s": t3 - t2,
                  "devices": [list(d) for d in devices]}))
"""


@dataclass(frozen=True)
class ListingTime:
    """How long SANE took to start and to list devices with one configuration."""

    config_dir: str
    init_s: float
    list_s: float
    devices: int

    @property
    def total_s(self) -> float:
        return self.init_s + self.list_s


def time_listing(config_dir: str | Path, timeout: float = 120.0) -> ListingTime:
    """sane.init() + get_devices() in a fresh process with SANE_CONFIG_DIR set to
    `config_dir` (the only way to compare configurations: libsane keeps the first
    one it read for the life of a process)."""
    env = dict(os.environ, **{ENV_VAR: str(config_dir)})
    out = subprocess.run([sys.executable, "-c", _TIME_LISTING], env=env, check=True,
                         capture_output=True, text=True, timeout=timeout)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return ListingTime(str(config_dir), data["init_s"], data["list_s"], len(data["devices"]))


@dataclass
class Steps:
    """Named, timed steps of a technician command, printed as they finish."""

    echo: Callable[[str], object] | None = None
    done: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, **detail: Any) -> Iterator[dict[str, Any]]:
        """Time the block; the caller may add details to the yielded dict."""
        record: dict[str, Any] = {"step": name, **detail}
        started = time.perf_counter()
        try:
            yield record
        except Exception as e:
            record["error"] = getattr(e, "key", type(e).__name__)
            record["message"] = str(e)
            raise
        finally:
            record["seconds"] = round(time.perf_counter() - started, 4)
            self.done.append(record)
            if self.echo is not None:
                extra = {k: v for k, v in record.items() if k not in ("step", "seconds")}
                self.echo(f"{record['seconds'] * 1000:9.1f} ms  {name}"
                          + (f"  {json.dumps(extra, ensure_ascii=False)}" if extra else ""))

    def page(self, batch: Iterator[Any], number: int) -> Any | None:
        """The next page of `batch`, timed as step "page <number>" with its size, mode,
        dpi and side; None (the step renamed "end of batch") when the batch is done."""
        with self.step(f"page {number}") as rec:
            page = next(batch, None)
            if page is None:
                rec["step"] = "end of batch"
                return None
            rec.update(size=list(page.size), mode=page.mode,
                       dpi=page.info.get("dpi", ("?",))[0], side=page.info.get("side"))
            return page


def _use_config(args: argparse.Namespace) -> tuple[str, int, str]:
    """Point SANE at the configured folder before it starts; the configured device,
    resolution and mode."""
    from appliance.system import config as config_mod

    config = config_mod.load(getattr(args, "config", None))
    sane_dir = getattr(args, "sane_config_dir", None) or config.scanner.sane_config_dir
    if sane_dir:
        os.environ[ENV_VAR] = str(Path(sane_dir).resolve())
    return config.scanner.device, config.scanner.resolution, config.scanner.mode


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--sane-config-dir", default=None,
                        help="SANE folder to use instead of the configured one")


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--local-only", action="store_true",
                        help="ask backends for local (USB) devices only")
    parser.add_argument("--compare-system", action="store_true",
                        help=f"also time the listing with {SYSTEM_CONFIG_DIR} (Debian's "
                             "default) in a separate process")


def cmd_list(args: argparse.Namespace) -> int:
    """List SANE devices with backend, identity and timings. Exit 1 if none."""
    _use_config(args)
    from appliance.scanner import device
    from appliance.scanner.errors import ScannerError

    echo = None if args.json else print
    steps = Steps(echo)
    devices: list[device.DeviceInfo] = []
    try:
        with steps.step("start SANE", config_dir=os.environ.get(ENV_VAR, str(SYSTEM_CONFIG_DIR))):
            device.reload_sane()
        with steps.step("list devices") as rec:
            devices = device.list_devices(local_only=args.local_only)
            rec["found"] = len(devices)
    except ScannerError as e:
        return _fail(args, steps, e)
    comparison: list[ListingTime] = []
    if args.compare_system:
        configured = os.environ.get(ENV_VAR)
        for folder in ([configured] if configured else []) + [str(SYSTEM_CONFIG_DIR)]:
            with steps.step("time listing in a fresh process", config_dir=folder) as rec:
                timing = time_listing(folder)
                rec.update(init_s=round(timing.init_s, 4), list_s=round(timing.list_s, 4),
                           found=timing.devices)
            comparison.append(timing)
    rows = [{"name": d.name, "backend": d.backend, "vendor": d.vendor, "model": d.model,
             "type": d.type, "serial": d.serial, "identity": d.identity.to_string()}
            for d in devices]
    if args.json:
        print(json.dumps({"devices": rows, "steps": steps.done,
                          "comparison": [asdict(c) for c in comparison]},
                         ensure_ascii=False, indent=2))
    else:
        if not rows:
            print("no scanner found")
        for row in rows:
            serial = f", serial {row['serial']}" if row["serial"] else ""
            print(f"{row['name']}\n    backend {row['backend']}: {row['vendor']} "
                  f"{row['model']} ({row['type']}{serial})\n    identity {row['identity']}")
    return 0 if devices else 1


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--device", default=None,
                        help="SANE name or identity (default: the configured one)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--source", choices=SOURCES, default=None,
                       help="scan from here (default: flatbed)")
    which.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="scan with a one-tap preset")
    parser.add_argument("--save", type=Path, default=None,
                        help="write the pages into this folder as PNG")
    parser.add_argument("--read-timeout", type=float, default=None,
                        help="abandon a read after this many seconds without data")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="set a raw SANE option first (repeatable; drills on the "
                             "test backend, e.g. read_return_value=SANE_STATUS_JAMMED)")


def _option_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"yes": True, "true": True, "no": False, "false": False}.get(text.lower(), text)


def cmd_test(args: argparse.Namespace) -> int:
    """Open, read capabilities, scan one batch; each step timed. Exit 1 on a fault."""
    wanted, resolution, mode = _use_config(args)
    from appliance.scanner import device
    from appliance.scanner.errors import ScannerError
    from appliance.scanner.settings import preset

    wanted = args.device if args.device is not None else wanted
    echo = None if args.json else print
    steps = Steps(echo)
    result: dict[str, Any] = {}
    timeouts = {} if args.read_timeout is None else {"read_timeout": args.read_timeout}
    try:
        with steps.step("start SANE"):
            device.reload_sane()
        with steps.step("open", wanted=wanted or "(first listed)") as rec:
            scanner = device.open_scanner(wanted, resolution, mode, **timeouts)
            rec.update(name=scanner.info.name, backend=scanner.info.backend)
        with scanner:
            with steps.step("capabilities") as rec:
                caps = scanner.capabilities()
                result["identity"] = scanner.identity.to_string()
                result["capabilities"] = caps.to_dict()
                rec.update(sources=list(caps.sources), presets=list(caps.presets))
            for item in args.option:
                name, _, value = item.partition("=")
                with steps.step("set option", option=name, value=value):
                    scanner.set_option(name.strip().replace("-", "_"), _option_value(value))
            what: Any = preset(args.preset).settings if args.preset else (args.source
                                                                           or "flatbed")
            batch = scanner.scan(what)
            pages = 0
            while (page := steps.page(batch, pages + 1)) is not None:
                pages += 1
                if args.save is not None:
                    args.save.mkdir(parents=True, exist_ok=True)
                    page.save(args.save / f"page-{pages:03d}.png")
            result["pages"] = pages
            with steps.step("close"):
                scanner.close()
    except ScannerError as e:
        return _fail(args, steps, e, result)
    if args.json:
        print(json.dumps({**result, "ok": True, "steps": steps.done}, ensure_ascii=False,
                         indent=2))
    else:
        print(f"ok: {result['pages']} page(s) from {result['identity']}")
    return 0


def add_write_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path,
                        help="where to write the SANE files (then set scanner.sane_config_dir)")
    parser.add_argument("--escl", action="append", default=[], metavar="NAME=URL",
                        help="a network scanner for airscan, e.g. "
                             "'Office Scanner=http://192.168.1.50/eSCL' (repeatable)")
    parser.add_argument("--with-test-backends", action="store_true",
                        help=f"also load {', '.join(TEST_BACKENDS)} (fault drills)")


def cmd_write_config(args: argparse.Namespace) -> int:
    """Write the appliance's minimal SANE folder: dll.conf with only its backends,
    airscan.conf with the office scanner and no discovery, the USB backends' files
    from /etc/sane.d with their network probing off. Exit 2 on a bad --escl."""
    devices = []
    for item in args.escl:
        name, sep, url = item.partition("=")
        if not sep or not name.strip():
            print(f"--escl wants NAME=URL, not {item!r}", file=sys.stderr)
            return 2
        devices.append((name.strip(), url.strip()))
    backends = (*APPLIANCE_BACKENDS, *(TEST_BACKENDS if args.with_test_backends else ()))
    try:
        folder = write_sane_config(args.folder, backends=backends, airscan_devices=devices)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    print(f"SANE configuration written to {folder}: {', '.join(backends)}")
    print(f"set scanner.sane_config_dir = \"{folder.resolve()}\" in the appliance config")
    return 0


def _fail(args: argparse.Namespace, steps: Steps, error: Exception,
          result: dict[str, Any] | None = None) -> int:
    key = getattr(error, "key", "scanner.error")
    pages = getattr(error, "pages_done", 0)
    if args.json:
        print(json.dumps({**(result or {}), "ok": False, "error": key, "message": str(error),
                          "pages_done": pages, "steps": steps.done},
                         ensure_ascii=False, indent=2))
    else:
        print(f"FAILED ({key}) after {pages} page(s): {error}")
    return 1
