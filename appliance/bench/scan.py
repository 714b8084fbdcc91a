"""`appliance bench scan`: the appliance's scanning overhead per page against plain
`scanimage` on the same device, in the same run (issue 13; goal: ratio <= 1.1).

Why: the appliance reads every page through python-sane and then checks and stores
it; a person at the scanner should not wait longer per page than the scanner itself
makes them wait. Both sides drive the same eSCL emulator through sane-airscan with the
same SANE configuration, the same source (the feeder), resolution and mode, each in a
fresh process (SANE started, device opened, N pages read, device closed), in
alternating order over several rounds; the median round decides.

Three figures per page:
- `scanimage_s`: `scanimage --batch` writing PNM files (the C reference);
- `appliance_s`: the appliance's scanner layer (`open_scanner`, `Scanner.scan`: the
  options set, each page read and decoded to an image) - the "ratio" the goal is about;
- `appliance_stored_s`: the same plus what the worker does with each page before the
  next (page checks, PNG master, thumbnail, sealing, SQLite commit, as
  `records.pages.store_page`), reported as `ratio_stored` for information: that work is
  the appliance's, not overhead on the scanner's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.system.process import start_announcing, stop_process

GOAL_RATIO = 1.1
DEVICE_NAME = "BHXH Demo Scanner"

# The appliance side, run in a fresh interpreter like scanimage is a fresh process.
# argv: device name, pages expected, resolution, "store" or "read", data dir.
_CHILD = r"""
import sys, time
from appliance.scanner.device import open_scanner
name, pages, resolution, mode, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    sys.argv[4], sys.argv[5]
store = None
if mode == "store":
    from appliance.records import dossiers, pages as page_store
    from appliance.store.db import connect
    from appliance.store.files import FileStore
    from appliance.system import config as config_mod
    config = config_mod.with_overrides(config_mod.Config(), paths={"data_dir": data})
    conn = connect(config.paths.database)
    files = FileStore(config.paths.files, sealer=conn.sealer)
    dossier = dossiers.create(conn, config, "tk1-ts")
    paper = None
    def store(image):
        global paper
        paper = page_store.store_page(conn, files, dossier, paper, image, "bench",
                                      dpi=resolution).paper_id
count = 0
with open_scanner(name, resolution, "Color") as scanner:
    for image in scanner.scan("adf"):
        image.load()
        if store is not None:
            store(image)
        count += 1
if count != pages:
    sys.exit(f"read {count} page(s), expected {pages}")
"""


def _start_emulator(pages: int, page_delay: float) -> tuple[subprocess.Popen[str], str]:
    return start_announcing(
        [sys.executable, "-m", "appliance.demo.escl_emulator", "--port", "0",
         "--adf-pages", str(pages), "--page-delay", str(page_delay), "--model", DEVICE_NAME],
        "demo scanner ready: ", "the eSCL emulator")


def _timed(argv: list[str], env: dict[str, str], timeout: float) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    return seconds


def run(pages: int = 10, rounds: int = 3, resolution: int = 200, page_delay: float = 0.0,
        store: bool = True, timeout: float = 300.0) -> dict[str, Any]:
    """Measure; returns the JSON-ready result (seconds per page, medians over rounds)."""
    from appliance.scanner.sane_env import ENV_VAR, write_sane_config

    scanimage = shutil.which("scanimage")
    if scanimage is None:
        raise RuntimeError("scanimage not found (Debian package sane-utils)")
    emulator, url = _start_emulator(pages, page_delay)
    try:
        # scanimage must write its pages somewhere: RAM (/dev/shm) where there is one,
        # so it is timed reading pages, not writing 11 MB files to the disk.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
            else None
        with tempfile.TemporaryDirectory(prefix="bench-scan-", dir=shm) as tmp:
            work = Path(tmp)
            sane_dir = write_sane_config(work / "sane", airscan_url=url,
                                         airscan_name=DEVICE_NAME)
            env = dict(os.environ, **{ENV_VAR: str(sane_dir)})
            env.pop("SANE_DEFAULT_DEVICE", None)
            device = f"airscan:e0:{DEVICE_NAME}"
            sides: dict[str, list[float]] = {"scanimage": [], "appliance": []}
            if store:
                sides["appliance_stored"] = []
            for n in range(rounds):
                order = list(sides) if n % 2 == 0 else list(reversed(sides))
                for side in order:
                    out = work / f"{side}-{n}"
                    out.mkdir()
                    if side == "scanimage":
                        argv = [scanimage, "-d", device, "--source", "ADF",
                                "--resolution", str(resolution), "--mode", "Color",
                                "--format=pnm", f"--batch={out}/p%d.pnm"]
                    else:
                        argv = [sys.executable, "-c", _CHILD, device, str(pages),
                                str(resolution),
                                "store" if side == "appliance_stored" else "read", str(out)]
                    sides[side].append(_timed(argv, env, timeout))
                    if side == "scanimage":
                        got = len(list(out.glob("p*.pnm")))
                        if got != pages:
                            raise RuntimeError(f"scanimage wrote {got} page(s), not {pages}")
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        stop_process(emulator)
    per_page = {side: statistics.median(times) / pages for side, times in sides.items()}
    result: dict[str, Any] = {
        "device": "eSCL emulator via sane-airscan",
        "pages": pages, "rounds": rounds, "resolution": resolution, "source": "adf",
        "page_delay_s": page_delay,
        "scanimage_s_per_page": round(per_page["scanimage"], 4),
        "appliance_s_per_page": round(per_page["appliance"], 4),
        "ratio": round(per_page["appliance"] / per_page["scanimage"], 3),
        "goal_ratio": GOAL_RATIO,
        "rounds_s": {side: [round(t, 3) for t in times] for side, times in sides.items()},
    }
    if store:
        result["appliance_stored_s_per_page"] = round(per_page["appliance_stored"], 4)
        result["ratio_stored"] = round(per_page["appliance_stored"] / per_page["scanimage"], 3)
    result["meets_goal"] = result["ratio"] <= GOAL_RATIO
    return result


def add_bench_scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pages", type=int, default=10,
                        help="feeder pages per batch (process start-up is spread over them)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="batches per side, alternating order (median kept)")
    parser.add_argument("--resolution", type=int, default=200, help="dpi (>= 200)")
    parser.add_argument("--page-delay", type=float, default=0.0,
                        help="seconds the emulated scanner takes per page (a real "
                             "scanner's pace; 0: as fast as it can make pages)")
    parser.add_argument("--no-store", action="store_true",
                        help="skip the scan-and-store side (ratio_stored)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_bench_scan(args: argparse.Namespace) -> int:
    """0 when the ratio meets the goal, 1 when it does not (the figures are printed
    either way)."""
    result = run(pages=args.pages, rounds=args.rounds, resolution=args.resolution,
                 page_delay=args.page_delay, store=not args.no_store)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"scanimage:  {result['scanimage_s_per_page'] * 1000:8.1f} ms/page")
        print(f"appliance:  {result['appliance_s_per_page'] * 1000:8.1f} ms/page "
              f"(ratio {result['ratio']:.3f}, goal <= {GOAL_RATIO})")
        if "ratio_stored" in result:
            print(f"  + stored: {result['appliance_stored_s_per_page'] * 1000:8.1f} ms/page "
                  f"(ratio {result['ratio_stored']:.3f})")
    return 0 if result["meets_goal"] else 1
