"""`appliance bench web`: how fast the kiosk answers while the worker reads a page.

Why: the web and the worker share the device's cores; OCR takes all the CPU it is
given, and a citizen tapping on the kiosk must not wait for it. Issue 11's goal: the
p95 *server time* of the kiosk pages and of the status endpoints stays within 100 ms
while an OCR job runs.

This starts the real parts as `appliance run` does (the demo eSCL scanner, the worker,
the web under gunicorn with the appliance's own options) except sync, which the
measurement does not touch. The only difference in the web is gunicorn's access log,
switched on with the request time (``%(D)s``, microseconds from the parsed request to
the last byte written): that is the server time. Concurrent clients, each with its own
kiosk session (a dossier opened through the API) and its own loopback address (so the
per-client limits of the kiosk treat them as different kiosks), cycle through the
pages a citizen sees and the endpoints the screens poll over keep-alive connections,
as a browser does; each request's client-side latency is recorded too.

Two phases on the same processes: first with the worker idle, then with a feeder
keeping a scan + OCR job queued behind the running one for the whole phase (the share
of samples during which a job was running is reported as ``ocr_busy_fraction``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from appliance.bench.local import free_port, wait_until
from appliance.system import config as config_mod

GOAL_MS = 100.0
PROCEDURE = "khac"
# gunicorn access-log line: client address, method, path without query, status, request
# time in µs.
ACCESS_FORMAT = "BENCH %(h)s %(m)s %(U)s %(s)s %(D)s"
_ACCESS_RE = re.compile(r"BENCH (\S+) (\S+) (\S+) (\d{3}) (\d+)")


@dataclass(frozen=True)
class Route:
    """A request the screens make: a name for the report, a path (with ``{job}`` filled
    from the client's own scan job) and the path pattern its access-log lines match."""

    name: str
    path: str
    pattern: str

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.pattern, path) is not None


KIOSK_ROUTES: tuple[Route, ...] = (
    Route("kiosk_start", "/kiosk", r"/kiosk/?"),
    Route("kiosk_consent", f"/kiosk/consent?procedure={PROCEDURE}", r"/kiosk/consent"),
    Route("kiosk_dossier", "/kiosk/dossier", r"/kiosk/dossier"),
    # The dossier screen's thumbnail of the scanned page, and that page enlarged.
    Route("kiosk_thumbnail", "/api/pages/{sha}/thumbnail", r"/api/pages/[0-9a-f]{64}/thumbnail"),
    Route("kiosk_page", "/kiosk/dossier/pages/{page}", r"/kiosk/dossier/pages/\d+"),
    Route("kiosk_summary", "/kiosk/dossier/summary", r"/kiosk/dossier/summary"),
    Route("kiosk_lookup", "/kiosk/lookup", r"/kiosk/lookup"),
)
STATUS_ROUTES: tuple[Route, ...] = (
    # What kiosk.js polls every 500 ms during a scan.
    Route("api_job", "/api/jobs/{job}?lang=vi", r"/api/jobs/\d+"),
    # The device status (backlog, delivery, scanner, OCR, disk) the staff screens read.
    Route("api_status", "/api/status", r"/api/status"),
)
ROUTES = KIOSK_ROUTES + STATUS_ROUTES


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method: a value that was measured."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, p50, p95, p99 and max in ms, rounded for the report."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {"n": len(values), "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1), "p99": round(percentile(values, 99), 1),
            "max": round(max(values), 1)}


def parse_access_log(lines: Iterable[str], routes: Sequence[Route] = ROUTES,
                     hosts: Iterable[str] | None = None) -> dict[str, list[float]]:
    """Server time in ms per route from gunicorn access-log lines in `ACCESS_FORMAT`,
    of the 200 answers to the clients at `hosts` (all when None); other lines (the
    feeder's polls, other paths, errors) are left out, as `drive` leaves them out."""
    wanted = set(hosts) if hosts is not None else None
    out: dict[str, list[float]] = {r.name: [] for r in routes}
    for line in lines:
        m = _ACCESS_RE.search(line)
        if (m is None or m.group(2) != "GET" or m.group(4) != "200"
                or (wanted is not None and m.group(1) not in wanted)):
            continue
        for route in routes:
            if route.matches(m.group(3)):
                out[route.name].append(int(m.group(5)) / 1000.0)
                break
    return out


@dataclass
class Client:
    """One kiosk: a keep-alive connection from its own loopback address and a cookie."""

    host: str
    port: int
    source: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)
    job: int | None = None
    page: int | None = None  # the row id of the client's scanned page
    sha: str | None = None  # and its sha256
    _conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request; the connection is reopened once if the server closed it."""
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Accept-Language": "vi", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30,
                                                        source_address=(self.source, 0))
            try:
                self._conn.request(method, path, body=data, headers=hdrs)
                response = self._conn.getresponse()
                payload = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
                continue
            for header in response.headers.get_all("Set-Cookie") or ():
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, payload
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def drive(clients: Sequence[Client], routes: Sequence[Route], seconds: float
          ) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Every client cycles through `routes` for `seconds`, one request after another
    (a person waits for a page before the next tap; many kiosks are many clients).

    Returns client-side latency in ms per route and the count of answers that were not
    200 (or failed) per route.
    """
    latency: dict[str, list[float]] = {r.name: [] for r in routes}
    errors: dict[str, int] = {r.name: 0 for r in routes}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(client: Client, offset: int) -> None:
        i = offset
        while time.monotonic() < deadline:
            route = routes[i % len(routes)]
            i += 1
            path = route.path.format(job=client.job, page=client.page, sha=client.sha)
            t0 = time.perf_counter()
            try:
                status, _ = client.request("GET", path)
            except (http.client.HTTPException, OSError):
                status = 0
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                if status == 200:
                    latency[route.name].append(ms)
                else:
                    errors[route.name] += 1

    threads = [threading.Thread(target=run, args=(c, n), daemon=True)
               for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latency, errors


def _json(client: Client, method: str, path: str, body: dict[str, Any] | None = None
          ) -> tuple[int, Any]:
    try:
        status, payload = client.request(method, path, body)
    except (http.client.HTTPException, OSError):
        return 0, None
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, None


class Feeder(threading.Thread):
    """Keeps the worker busy: a scan (and its OCR) queued behind the running one.

    A dossier holds one active job at a time, so the feeder alternates two dossiers of
    its own (its own loopback address: its rate limits are not the clients'); a scan
    refused (rate limit, a full dossier) opens a fresh dossier. It also samples whether
    a job is running, for ``ocr_busy_fraction``.
    """

    def __init__(self, host: str, port: int, source: str) -> None:
        super().__init__(daemon=True)
        self.client = Client(host, port, source)
        self.stop = threading.Event()
        self.measuring = threading.Event()
        self.samples: list[bool] = []
        self.done = 0
        self.failed = 0
        self.refused = 0
        self._dossiers: list[str] = []
        self._jobs: dict[str, int] = {}

    def _new_dossier(self) -> str | None:
        # No cookie: a fresh session each time (the demo has no officer PIN, so the
        # feeder may queue scans on any dossier, as memory.py does).
        self.client.cookies.clear()
        status, body = _json(self.client, "POST", "/api/dossiers", {"procedure": PROCEDURE})
        self.client.cookies.clear()
        return str(body["id"]) if status == 201 and body else None

    def _queue(self, dossier: str) -> bool:
        status, body = _json(self.client, "POST", f"/api/dossiers/{dossier}/scans",
                             {"source": "flatbed"})
        if status == 202 and body:
            self._jobs[dossier] = int(body["job_id"])
            return True
        self.refused += 1
        return False

    def _state(self, job: int) -> str:
        status, body = _json(self.client, "GET", f"/api/jobs/{job}")
        return str((body or {}).get("state", "")) if status == 200 else ""

    def run(self) -> None:
        while not self.stop.is_set():
            running = False
            for dossier, job in list(self._jobs.items()):
                state = self._state(job)
                running = running or state == "running"
                if state in ("done", "failed", "cancelled"):
                    self.done += state == "done"
                    self.failed += state != "done"
                    del self._jobs[dossier]
            if self.measuring.is_set():
                self.samples.append(running)
            while len(self._jobs) < 2 and not self.stop.is_set():
                idle = [d for d in self._dossiers if d not in self._jobs]
                dossier = idle[0] if idle else self._new_dossier()
                if dossier is None:
                    break
                if dossier not in self._dossiers:
                    self._dossiers.append(dossier)
                if not self._queue(dossier):
                    self._dossiers.remove(dossier)
                    if self.stop.wait(1.0):
                        break
            self.stop.wait(0.5)


def serve(config_path: str, access_log: str) -> None:
    """The web as `appliance web` runs it, plus the access log with request times."""
    from appliance.store.db import connect
    from appliance.web.server import WebServer, gunicorn_options

    config = config_mod.load(config_path)
    connect(config.paths.database, migrate=True, key_file=config.paths.key_file).close()
    options = {**gunicorn_options(config), "accesslog": access_log,
               "access_log_format": ACCESS_FORMAT}
    WebServer(config, options).run()


@dataclass
class Appliance:
    """demo scanner + worker + web (with the access log), stopped by PID."""

    data_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, web_port: int, scanner_port: int, threads: int | None,
              worker_nice: int = 0) -> Path:
        from appliance.demo.supervisor import prepare_demo_config

        web: dict[str, Any] = {"bind": f"127.0.0.1:{web_port}"}
        if threads:
            web["threads"] = threads
        config = config_mod.with_overrides(
            config_mod.Config(), paths={"data_dir": str(self.data_dir)}, web=web)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = prepare_demo_config(config, scanner_port)
        cfg = self.data_dir / "bench-web.toml"
        cfg.write_text(config_mod.dump(config), encoding="utf-8")
        env = dict(os.environ, **{config_mod.CONFIG_ENV: str(cfg)})
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        access = self.data_dir / "access.log"
        me = [sys.executable, "-m", "appliance"]
        argvs = [
            [*me, "demo-scanner", "--port", str(scanner_port)],
            [sys.executable, "-c",
             f"from appliance.bench.web import serve; serve({str(cfg)!r}, {str(access)!r})"],
            [*me, "worker"],
        ]
        for n, argv in enumerate(argvs):
            log = open(self.data_dir / f"bench-web-{n}.log", "wb")  # noqa: SIM115
            # The worker at a lower CPU priority, as a unit's Nice= would start it.
            lower = (lambda: os.nice(worker_nice)) if n == 2 and worker_nice else None  # noqa: E731
            self.procs.append(subprocess.Popen(argv, env=env, stdout=log,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True, preexec_fn=lower))
            log.close()
            if n == 1:  # the web migrates the schema; the worker starts after it
                probe = Client("127.0.0.1", web_port)
                wait_until(lambda p=probe: _json(p, "GET", "/api/health")[0] == 200, 120,
                      "the web")
                probe.close()
        return access

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _phase(clients: Sequence[Client], access: Path, seconds: float) -> dict[str, Any]:
    with access.open("rb") as f:
        start = f.seek(0, os.SEEK_END)
    latency, errors = drive(clients, ROUTES, seconds)
    time.sleep(0.5)  # the last lines are written after the response
    with access.open("rb") as f:
        f.seek(start)
        server = parse_access_log(f.read().decode(errors="replace").splitlines(),
                                  hosts={c.source for c in clients})
    routes = {r.name: {"server_ms": summary(server[r.name]),
                       "client_ms": summary(latency[r.name]), "errors": errors[r.name]}
              for r in ROUTES}

    def pooled(group: Sequence[Route], source: dict[str, list[float]]) -> dict[str, Any]:
        return summary([v for r in group for v in source[r.name]])

    return {
        "seconds": seconds,
        "routes": routes,
        "kiosk_pages": {"server_ms": pooled(KIOSK_ROUTES, server),
                        "client_ms": pooled(KIOSK_ROUTES, latency)},
        "status": {"server_ms": pooled(STATUS_ROUTES, server),
                   "client_ms": pooled(STATUS_ROUTES, latency)},
        "errors": sum(errors.values()),
    }


def _worst_p95(phase: dict[str, Any]) -> float:
    values = [r["server_ms"]["p95"] for r in phase["routes"].values()
              if r["server_ms"]["p95"] is not None]
    return max(values) if values else math.inf


def measure(data_dir: Path, *, clients: int = 4, seconds: float = 20.0,
            threads: int | None = None, worker_nice: int = 0,
            timeout_s: float = 300.0) -> dict[str, Any]:
    """Both phases on one running appliance; the figures as one dict."""
    web_port, scanner_port = free_port(), free_port()
    app = Appliance(data_dir)
    feeder: Feeder | None = None
    kiosks: list[Client] = []
    try:
        t0 = time.monotonic()
        access = app.start(web_port, scanner_port, threads, worker_nice)
        probe = Client("127.0.0.1", web_port)
        for key, want in (("ocr_state", "ready"), ("scanner_state", "ready")):
            wait_until(lambda k=key, w=want: (_json(probe, "GET", "/api/status")[1] or {}).get(k)
                  == w, timeout_s, key)
        # Each kiosk: its own address and session, a dossier with one scanned page (so
        # the dossier page shows a thumbnail and the job poll has a job to read).
        for n in range(clients):
            c = Client("127.0.0.1", web_port, f"127.0.0.{10 + n}")
            status, body = _json(c, "POST", "/api/dossiers", {"procedure": PROCEDURE})
            if status != 201:
                raise RuntimeError(f"opening a dossier answered {status}")
            # The demo has no officer PIN: queue the scan without the cookie (no CSRF
            # token needed), as memory.py does; the session keeps the dossier.
            jar, c.cookies = c.cookies, {}
            status, job = _json(c, "POST", f"/api/dossiers/{body['id']}/scans",
                                {"source": "flatbed"})
            c.cookies = jar
            if status != 202:
                raise RuntimeError(f"starting a scan answered {status}")
            c.job = int(job["job_id"])
            kiosks.append(c)
        for c in kiosks:
            wait_until(lambda c=c: (_json(c, "GET", f"/api/jobs/{c.job}")[1] or {}).get("state")
                  in ("done", "failed"), timeout_s, "the setup scans")
            html = c.request("GET", "/kiosk/dossier")[1].decode(errors="replace")
            page = re.search(r"/kiosk/dossier/pages/(\d+)", html)
            sha = re.search(r"/api/pages/([0-9a-f]{64})/thumbnail", html)
            if page is None or sha is None:
                raise RuntimeError("the setup scan left no page on the dossier screen")
            c.page, c.sha = int(page.group(1)), sha.group(1)
        startup_s = time.monotonic() - t0
        time.sleep(2.0)
        idle = _phase(kiosks, access, seconds)
        feeder = Feeder("127.0.0.1", web_port, "127.0.0.9")
        feeder.start()
        wait_until(lambda: any((_json(probe, "GET", f"/api/jobs/{j}")[1] or {}).get("state")
                          == "running"
                          for j in list(feeder._jobs.values())), timeout_s,
              "the first OCR job to run")
        feeder.measuring.set()
        busy = _phase(kiosks, access, seconds)
        feeder.measuring.clear()
        busy["ocr_busy_fraction"] = round(sum(feeder.samples) / max(1, len(feeder.samples)),
                                          2)
        busy["ocr_jobs_done"] = feeder.done
        worst = _worst_p95(busy)
        return {
            "goal_p95_server_ms": GOAL_MS,
            "goal_met": worst <= GOAL_MS and busy["ocr_busy_fraction"] >= 0.5,
            "worst_p95_server_ms_with_ocr": worst,
            "worst_p95_server_ms_idle": _worst_p95(idle),
            "clients": clients,
            "web_threads": threads or config_mod.Config().web.threads,
            "worker_nice": worker_nice,
            "startup_s": round(startup_s, 1),
            "load_average": list(os.getloadavg()),
            "cpus": os.cpu_count(),
            "without_ocr": idle,
            "with_ocr": busy,
        }
    finally:
        if feeder is not None:
            feeder.stop.set()
            feeder.join(15)
        for c in kiosks:
            c.close()
        app.stop()


def add_bench_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent kiosk clients (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="length of each phase (default 20)")
    parser.add_argument("--threads", type=int, help="web request threads (default: "
                                                    "web.threads)")
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="start the worker this much nicer than the web (as Nice= in "
                             "its unit would); default 0, as the units run today")
    parser.add_argument("--data-dir", type=Path,
                        help="where the appliance keeps its data (default: a temporary "
                             "folder, removed afterwards)")


def cmd_bench_web(args: argparse.Namespace) -> int:
    """0 when the p95 server time of every route stays within the goal during OCR."""
    kwargs = {"clients": args.clients, "seconds": args.seconds, "threads": args.threads,
              "worker_nice": args.worker_nice}
    if args.data_dir:
        result = measure(args.data_dir, **kwargs)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
            result = measure(Path(folder) / "data", **kwargs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for phase in ("without_ocr", "with_ocr"):
            print(f"{phase}:")
            for name, r in result[phase]["routes"].items():
                s, c = r["server_ms"], r["client_ms"]
                print(f"  {name:<15} server p50/p95/p99 {s['p50']}/{s['p95']}/{s['p99']} ms"
                      f"  client p50/p95/p99 {c['p50']}/{c['p95']}/{c['p99']} ms"
                      f"  n={s['n']} errors={r['errors']}")
        print(f"OCR busy {result['with_ocr']['ocr_busy_fraction']:.0%} of the phase; worst "
              f"p95 server time with OCR {result['worst_p95_server_ms_with_ocr']} ms "
              f"(goal {GOAL_MS:.0f} ms): {'met' if result['goal_met'] else 'NOT met'}; "
              f"load average {result['load_average'][0]:.1f}")
    return 0 if result["goal_met"] else 1
