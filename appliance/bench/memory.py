"""`appliance bench memory`: what web, worker and sync hold in memory together.

Why: the appliance must fit a 2 GB Raspberry Pi beside Chromium (the kiosk screen)
and the OS; the goal is 300 MB for the three services with the OCR models loaded and
a scan in flight. This starts the whole appliance as `appliance run` does (with the
demo eSCL scanner), waits until the worker reports its models ready, starts one scan
and OCR through the web API, and samples /proc while the job runs and once it is done:
VmRSS and Pss (smaps_rollup), summed over each service's process tree (gunicorn's
arbiter + worker count as web). RSS counts pages shared between processes once per
process, so the RSS total is the pessimistic figure the goal is held to; Pss shares
them out and is what the board really spends.

The demo scanner and the `appliance run` parent are reported apart and left out of
the total: a device has neither.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.bench.local import free_port, wait_until
from appliance.system import config as config_mod
from appliance.system.process import stop_process

SERVICES = ("web", "worker", "sync")
GOAL_MB = 300.0
MB = 1024 * 1024
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text()
                      .split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _kb(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def memory_of(pids: list[int]) -> tuple[float, float]:
    """(VmRSS, Pss) in MB summed over `pids`; processes gone meanwhile count 0."""
    rss = pss = 0
    for pid in pids:
        try:
            rss += _kb(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
            pss += _kb(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss")
        except OSError:
            continue
    return rss / 1024, pss / 1024


def _service_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv if a]
    for name in (*SERVICES, "demo-scanner"):
        if name in words[1:]:
            return name
    return None


@dataclass
class Sample:
    """One moment: MB per service (RSS and PSS) and the three services' totals."""

    rss_mb: dict[str, float] = field(default_factory=dict)
    pss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def total_rss_mb(self) -> float:
        return sum(self.rss_mb[s] for s in SERVICES if s in self.rss_mb)

    @property
    def total_pss_mb(self) -> float:
        return sum(self.pss_mb[s] for s in SERVICES if s in self.pss_mb)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_rss_mb": round(self.total_rss_mb, 1),
                "total_pss_mb": round(self.total_pss_mb, 1)}


def sample(parent: int) -> Sample:
    s = Sample()
    for child in _children(parent):
        name = _service_of(child)
        if name is None:
            continue
        rss, pss = memory_of(tree(child))
        s.rss_mb[name], s.pss_mb[name] = round(rss, 1), round(pss, 1)
    rss, pss = memory_of([parent])
    s.rss_mb["run"], s.pss_mb["run"] = round(rss, 1), round(pss, 1)
    return s


def measure(data_dir: Path, *, settle_s: float = 3.0, timeout_s: float = 300.0,
            extra_config: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the appliance in `data_dir`, put one scan in flight, return the figures."""
    web_port, scanner_port = free_port(), free_port()
    config = config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(data_dir)},
        web={"bind": f"127.0.0.1:{web_port}"}, **(extra_config or {}))
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = data_dir / "bench-memory.toml"
    cfg.write_text(config_mod.dump(config), encoding="utf-8")
    env = dict(os.environ, **{config_mod.CONFIG_ENV: str(cfg)})
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    base = f"http://127.0.0.1:{web_port}"
    log = open(data_dir / "bench-memory.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run",
                             "--demo-scanner-port", str(scanner_port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.monotonic()
        wait_until(lambda: _http("GET", f"{base}/api/health")[0] == 200, timeout_s, "the web")
        wait_until(lambda: (_http("GET", f"{base}/api/status")[1] or {}).get("ocr_state")
              == "ready", timeout_s, "the worker's models")
        wait_until(lambda: (_http("GET", f"{base}/api/status")[1] or {}).get("scanner_state")
              == "ready", timeout_s, "the demo scanner")
        idle = sample(proc.pid)
        status, dossier = _http("POST", f"{base}/api/dossiers", {"procedure": "khac"})
        if status != 201:
            raise RuntimeError(f"creating a dossier answered {status}")
        status, job = _http("POST", f"{base}/api/dossiers/{dossier['id']}/scans",
                            {"source": "flatbed"})
        if status != 202:
            raise RuntimeError(f"starting a scan answered {status}")
        samples: list[Sample] = []
        state = ""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            samples.append(sample(proc.pid))
            state = (_http("GET", f"{base}/api/jobs/{job['job_id']}")[1] or {}).get(
                "state", "")
            if state in ("done", "failed"):
                break
            time.sleep(0.3)
        if state != "done":
            raise RuntimeError(f"the scan ended {state or 'not at all'}")
        time.sleep(settle_s)
        after = sample(proc.pid)
        peak = max(samples, key=lambda s: s.total_rss_mb)
        ordered = sorted(samples, key=lambda s: s.total_rss_mb)
        median = ordered[len(ordered) // 2]
        return {
            "goal_mb": GOAL_MB,
            "startup_s": round(time.monotonic() - t0, 1),
            "idle": idle.as_dict(),
            "in_flight_median": median.as_dict(),
            "in_flight_peak": peak.as_dict(),
            "after_scan": after.as_dict(),
            "samples": len(samples),
            # Steady state: the larger of the typical moment of the scan (median sample)
            # and the settled state after it; the transient peak of one OCR pass is
            # reported beside it.
            "total_rss_mb": round(max(median.total_rss_mb, after.total_rss_mb), 1),
            "total_pss_mb": round(max(median.total_pss_mb, after.total_pss_mb), 1),
            "peak_rss_mb": round(peak.total_rss_mb, 1),
            "peak_pss_mb": round(peak.total_pss_mb, 1),
        }
    finally:
        stop_process(proc, timeout=30, group=False)
        log.close()


def add_bench_memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data-dir", type=Path,
                        help="where the appliance keeps its data (default: a temporary "
                             "folder, removed afterwards)")


def cmd_bench_memory(args: argparse.Namespace) -> int:
    """0 when the three services stay within the goal, 1 above it."""
    if args.data_dir:
        result = measure(args.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
            result = measure(Path(folder) / "data")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for moment in ("idle", "in_flight_median", "in_flight_peak", "after_scan"):
            s = result[moment]
            per = "  ".join(f"{n} {s['rss_mb'][n]:.0f}/{s['pss_mb'][n]:.0f}"
                            for n in (*SERVICES, "demo-scanner", "run") if n in s["rss_mb"])
            print(f"{moment:<17} RSS/PSS MB: {per}   services: {s['total_rss_mb']:.0f}/"
                  f"{s['total_pss_mb']:.0f}")
        print(f"web+worker+sync steady state: RSS {result['total_rss_mb']:.1f} MB, PSS "
              f"{result['total_pss_mb']:.1f} MB (goal {GOAL_MB:.0f} MB); peak RSS "
              f"{result['peak_rss_mb']:.1f} MB")
    return 0 if result["total_rss_mb"] <= GOAL_MB else 1
