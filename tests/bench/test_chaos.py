"""Chaos benchmark: real processes killed with SIGKILL at random moments while the
outbox drains, and every delivery guarantee checked at the end.

Why: the throughput work (binary record packs, batch inserts at the receiver, binary
file chunks with resume, UUIDv7 record ids) changed how records travel, and each of
those paths has its own crash windows. The crash tests in tests/central and tests/sync
each kill one process at one chosen moment; this one reproduces what an independent
check once did: a real mosquitto, `appliance sync` and `appliance central` as real
processes, and kill -9 of any of them, or several at once, at seeded random moments,
including a broker that restarts with its persistence file and one that restarts
without it (forgetting every session and in-flight message), and a 10-30 s outage.
Records keep being signed on the device while this happens, small ones (packed) and
scan-sized ones (300 KB - 1 MB, chunked, resumed after a kill).

At the end, after the drain: every record is at the receiver exactly once with its
signed bytes and its files' bytes, none is delivered on the device that the receiver
lacks (also checked after every event), both services are still running, and no
genuine record was set aside as a dead letter.

Run: .venv/bin/python -m pytest -m benchmark tests/bench/test_chaos.py -x -s
A run prints its seed; CHAOS_SEED=<seed> replays the same schedule of events (their
effect still depends on timing: these are processes, not a simulation).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.bench.fleet import fill_outbox
from appliance.central import store as central_store
from appliance.records import dossiers
from appliance.store.db import connect
from appliance.system import config as config_mod
from tests.helpers.device_records import TestRecord
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    SYNC,
    Attacker,
    Brokers,
    assert_exactly_once_everywhere,
    assert_no_false_delivery,
    central_read,
    device_dead_letters,
    enqueue,
    free_port,
    make_config,
    probe_receiver,
    service_process,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(300)]

BASE_SEED = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(2**31))
DRAIN_SECONDS = 120.0
# Events that hit one process or several at once, and how often each is drawn.
STRIKES: dict[str, tuple[str, ...]] = {
    "sync": ("sync",),
    "central": ("central",),
    "broker": ("broker",),
    "sync+central": ("sync", "central"),
    "sync+broker": ("sync", "broker"),
    "central+broker": ("central", "broker"),
    "all": ("sync", "central", "broker"),
}
WEIGHTS = (4, 4, 3, 2, 1, 1, 1)
# Device dead letters that carry no delivery: a resume answer ("have") that reached a
# sync process other than the one that asked (killed meanwhile), or came after the
# query had been given up; the record is sent again whole either way.
HARMLESS_DEVICE_DEAD_LETTERS = {"total", "stale"}


@dataclass(frozen=True)
class Run:
    name: str
    small: int                 # metadata records (no file or one < 1.5 KB): packed
    scans: int                 # records with one or two scan-sized files: chunked
    chunk_bytes: int
    broker: str                # restarts: "persistent", "volatile" or "mixed"
    chaos_seconds: float


RUNS = [
    Run("persistent-broker", 600, 8, 8_192, "persistent", 55),
    Run("volatile-broker", 1000, 8, 4_096, "volatile", 60),
    Run("mixed-broker", 2000, 10, 8_192, "mixed", 65),
]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, SIGKILL if it has not exited within 10 s."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Chaos:
    """One device, one receiver, one broker port; every process it starts is in
    `procs` or `brokers` and is stopped by PID in close()."""

    def __init__(self, tmp_path: Path, run: Run, rng: random.Random) -> None:
        self.tmp = tmp_path
        self.run = run
        self.rng = rng
        self.port = free_port()
        self.config: config_mod.Config = make_config(
            tmp_path, self.port, chunk_bytes=run.chunk_bytes, ack_timeout_seconds=4.0)
        self.config_file = write_config_file(tmp_path, self.config)
        self.sync_log = tmp_path / "sync.log"
        self.central_log = tmp_path / "central.log"
        self.brokers = Brokers(tmp_path / "broker")
        self.broker: MosquittoProcess | None = None
        self.sync: subprocess.Popen[bytes] | None = None
        self.central: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills: Counter[str] = Counter()
        self.records: list[TestRecord] = []
        self.scans_made = 0
        self.outage_seconds = 0.0
        self.false_delivery_checks = 0
        self.small_made = 0
        self.last_burst = 0
        self.scan_signed = False

    # --- processes ------------------------------------------------------------------

    def start_broker(self) -> None:
        persistent = (self.run.broker == "persistent" if self.run.broker != "mixed"
                      else self.rng.random() < 0.5)
        if persistent:
            # Saved every second: a SIGKILL loses at most the last second's changes.
            extra = "autosave_interval 1"
        else:
            # Forgets every session and queued message; an old save must not come back
            # in a later persistent life either.
            extra = "persistence false"
            (self.brokers.folder / "mosquitto.db").unlink(missing_ok=True)
        if self.broker is not None:  # a restart, not the first start
            self.kills["broker_start_" + ("persistent" if persistent else "volatile")] += 1
        self.broker = self.brokers.start(self.port, extra_config=extra)

    def start_sync(self) -> None:
        self.sync = service_process(SYNC, self.config_file, self.sync_log)
        self.procs.append(self.sync)

    def start_central(self) -> None:
        self.central = start_central(self.config_file, self.central_log)
        self.procs.append(self.central)

    def kill(self, what: str) -> None:
        """SIGKILL by PID (the broker through its helper, which also forgets it)."""
        target = {"sync": self.sync, "central": self.central,
                  "broker": self.broker.proc if self.broker else None}[what]
        assert target is not None and target.poll() is None, (
            f"{what} had exited before its kill:\n{self.logs()}")
        if what == "broker" and self.broker is not None:
            self.broker.kill()
        else:
            os.kill(target.pid, signal.SIGKILL)
            target.wait(10)
        self.kills[what] += 1

    def restart(self, what: str) -> None:
        {"sync": self.start_sync, "central": self.start_central,
         "broker": self.start_broker}[what]()

    def close(self) -> None:
        for proc in self.procs:
            _stop(proc)
        self.brokers.stop_all()

    def logs(self) -> str:
        return (f"--- {self.central_log} ---\n{_tail(self.central_log)}\n"
                f"--- {self.sync_log} ---\n{_tail(self.sync_log)}\n"
                f"--- broker log ---\n{_tail(self.brokers.folder / 'mosquitto.log', 15)}")

    def assert_running(self) -> None:
        for name, proc in (("sync", self.sync), ("central", self.central)):
            assert proc is not None and proc.poll() is None, (
                f"{name} exited with {proc.returncode if proc else None}:\n{self.logs()}")

    # --- records --------------------------------------------------------------------

    def sign_small(self, count: int) -> None:
        """`count` small records in one burst: signed copies of one real record (as the
        fleet bench makes them, appliance/bench/fleet.py), half with no file (metadata
        only), half with one small file each; both kinds travel packed."""
        file_bytes = 0 if self.rng.random() < 0.5 else self.rng.randint(200, 1500)
        conn = connect(self.config.paths.database)
        try:
            last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        finally:
            conn.close()
        fill_outbox(self.config, count, file_bytes)
        conn = connect(self.config.paths.database)
        try:
            ids = [r[0] for r in conn.execute(
                "SELECT record_id FROM outbox WHERE id > ? ORDER BY id", (last,))]
            for record_id in ids:
                rec = dossiers.record_of(conn, record_id)
                body = json.loads(rec.body_json)
                self.records.append(TestRecord(
                    record_id, rec.sha256, rec.body_json, body["dossier_code"],
                    [p["file"]["sha256"] for p in body["papers"] if p["file"]],
                    [p["result_code"] for p in body["papers"]]))
        finally:
            conn.close()
        self.small_made += len(ids)
        self.last_burst = len(ids)

    def sign_scan(self) -> None:
        """A scan: one or two papers of 300 KB - 1 MB, made through the records module."""
        sizes = (self.rng.randint(300_000, 1_000_000),)
        if self.rng.random() < 0.3:
            sizes += (self.rng.randint(300_000, 700_000),)
        self.records += enqueue(self.config, 1, pdf_sizes=sizes)
        self.scans_made += 1

    def burst(self, elapsed: float) -> bool:
        """What is due by now of the records still to sign: all of them by 70 % of the
        chaos, in bursts of random size, so the drain runs when a kill comes."""
        share = min(1.0, 0.2 + 0.8 * elapsed / (0.7 * self.run.chaos_seconds))
        due = round(self.run.small * share) - self.small_made
        signed = self.scan_signed = False
        if self.scans_made < round(self.run.scans * share) and self.rng.random() < 0.7:
            self.sign_scan()
            signed = self.scan_signed = True
        if due > 0:
            self.sign_small(self.rng.randint(max(1, due // 2), due))
            signed = True
        return signed

    def open_transfers(self) -> int:
        """Files the receiver is assembling from chunks (a scan mid-transfer)."""
        return central_read(
            self.config, lambda conn: conn.execute("SELECT COUNT(*) FROM transfers").fetchone()[0],
            0)

    def undelivered(self) -> list[tuple[str, str, int, float]]:
        """(record id, state, attempts, next attempt at) of every row not delivered."""
        conn = connect(self.config.paths.database)
        try:
            return [tuple(r) for r in conn.execute(
                "SELECT record_id, state, attempts, next_attempt_at FROM outbox "
                "WHERE state != 'delivered' ORDER BY id")]
        finally:
            conn.close()

    def in_flight(self) -> int:
        """Outbox rows claimed by the sync service and not yet acknowledged."""
        conn = connect(self.config.paths.database)
        try:
            return int(conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'sending'").fetchone()[0])
        finally:
            conn.close()

    def check_no_false_delivery(self) -> None:
        assert_no_false_delivery(self.config)
        self.false_delivery_checks += 1

    # --- events ---------------------------------------------------------------------

    def strike(self, kind: str) -> None:
        """SIGKILL each target of `kind` (random order, small gaps), then restart each
        after a random pause."""
        targets = list(STRIKES[kind])
        self.rng.shuffle(targets)
        # Read just before (under a ms): a broker's kill sends claimed rows back at once.
        if self.in_flight():
            self.kills["hit_flight"] += 1
        for what in targets:
            self.kill(what)
            time.sleep(self.rng.uniform(0, 0.3))
        # Read after: a transfer the receiver holds open stays so whoever was killed.
        if self.open_transfers():
            self.kills["hit_scan"] += 1
        time.sleep(self.rng.uniform(0, 1.5))
        self.rng.shuffle(targets)
        for what in targets:
            self.restart(what)
        self.kills["event_" + kind] += 1

    def outage(self, seconds: float, outage_started: float) -> None:
        """Broker down `seconds`; the services may be killed and restarted meanwhile
        (they must wait for the broker, not exit); signing goes on."""
        self.kill("broker")
        start = time.monotonic()
        for what in ("sync", "central"):
            if self.rng.random() < 0.5:
                time.sleep(self.rng.uniform(0, seconds / 3))
                self.kill(what)
                self.restart(what)
        while (down := time.monotonic() - start) < seconds:
            if self.rng.random() < 0.3:
                self.burst(down + outage_started)
            time.sleep(min(1.0, seconds - down))
        self.outage_seconds += time.monotonic() - start
        self.start_broker()
        self.kills["event_outage"] += 1

    def aim(self, signed: bool) -> None:
        """Pick the moment of the next strike: after a burst of signing (`signed`),
        mostly while its scan or its records are in flight (a scan cut off has to be
        resumed); otherwise mostly once a transfer is seen open; sometimes blind."""
        draw = self.rng.random()
        if self.scan_signed and draw < 0.8:
            # A 1 MB scan is in flight 50-100 ms; the receiver commits its chunks in
            # group commits, so a transfer is seldom seen open from outside.
            probe, wait, then = self.in_flight, 1.0, 0.08
        elif signed and draw < 0.8:
            # A burst drains in tens of ms (20 ms for 30 records, 55 ms for 150, on
            # 2 cores): strike at a random point of that window.
            probe, wait, then = self.in_flight, 1.0, 0.02 + 0.0003 * self.last_burst
        elif draw < 0.6:
            probe, wait, then = self.open_transfers, self.rng.uniform(0.5, 3.0), 0.1
        else:
            return
        deadline = time.monotonic() + wait
        while not probe() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.rng.uniform(0.0, then))

    def chaos(self) -> None:
        start = time.monotonic()
        outage_at = self.rng.uniform(0.15, 0.5) * self.run.chaos_seconds
        outage_for = self.rng.uniform(10, 30)
        while (elapsed := time.monotonic() - start) < self.run.chaos_seconds:
            signed = self.rng.random() < 0.7 and self.burst(elapsed)
            self.aim(signed)
            if outage_for and elapsed >= outage_at:
                self.outage(outage_for, elapsed)
                outage_for = 0
            else:
                self.strike(self.rng.choices(list(STRIKES), WEIGHTS)[0])
            self.check_no_false_delivery()
            time.sleep(self.rng.uniform(0.0, 1.5))
        while self.small_made < self.run.small:
            self.sign_small(self.run.small - self.small_made)
        while self.scans_made < self.run.scans:
            self.sign_scan()

    def drain(self) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        left = self.undelivered()
        while left:
            self.assert_running()
            if time.monotonic() > deadline:
                now = time.time()
                sample = [(rid, state, attempts, f"due in {due - now:.1f} s")
                          for rid, state, attempts, due in left[:10]]
                raise AssertionError(
                    f"drain stuck: {len(left)} of {len(self.records)} records not delivered "
                    f"after {DRAIN_SECONDS:.0f} s; first: {sample}\nlogs in {self.tmp}\n"
                    f"{self.logs()}")
            time.sleep(0.5)
            left = self.undelivered()

    def summary(self, seed: str, seconds: float, drain: float, result: str) -> str:
        k = self.kills
        combined = sum(v for n, v in k.items() if n.startswith("event_") and
                       (n == "event_all" or "+" in n))
        events = sum(v for n, v in k.items() if n.startswith("event_"))
        return (f"chaos {self.run.name}: seed={seed} records={len(self.records)} "
                f"(scans={self.scans_made}) kills sync={k['sync']} central={k['central']} "
                f"broker={k['broker']} (restarts persistent={k['broker_start_persistent']} "
                f"volatile={k['broker_start_volatile']}) combined={combined} "
                f"outage={self.outage_seconds:.0f}s events={events} (in flight={k['hit_flight']} "
                f"mid-scan={k['hit_scan']}) checks={self.false_delivery_checks} "
                f"drain={drain:.1f}s total={seconds:.0f}s result={result}")


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_kill9_chaos_delivers_every_record_exactly_once(run: Run, tmp_path: Path) -> None:
    seed = f"{BASE_SEED}:{run.name}"
    print(f"\nCHAOS_SEED={BASE_SEED} ({run.name}); files in {tmp_path}")
    rig = Chaos(tmp_path, run, random.Random(seed))
    t0 = time.monotonic()
    drained = 0.0
    result = "FAILED"
    try:
        rig.start_broker()
        rig.start_central()
        attacker = Attacker(rig.port, client_id="chaos-probe")
        try:
            probe_receiver(attacker, rig.config)  # subscribed: its session now exists
        finally:
            attacker.close()
        rig.burst(0)
        rig.start_sync()
        rig.chaos()
        t_drain = time.monotonic()
        rig.drain()
        drained = time.monotonic() - t_drain
        rig.assert_running()
        assert_exactly_once_everywhere(rig.config, rig.records)
        rig.check_no_false_delivery()
        dead_here = [d for d in central_store.list_dead_letters(rig.config.central.database)
                     if d["device_id"] == rig.config.device.id]
        assert not dead_here, f"receiver set aside genuine messages: {dead_here[:5]}"
        device_dead = device_dead_letters(rig.config)
        assert set(device_dead) <= HARMLESS_DEVICE_DEAD_LETTERS, (
            f"device set aside acks: {device_dead}")
        wait_for(lambda: rig.broker is not None and rig.broker.alive(), 1, "the broker")
        rig.assert_running()
        result = f"ok (device stale answers: {device_dead.get('stale', 0)})"
    finally:
        print(rig.summary(seed, time.monotonic() - t0, drained, result))
        rig.close()
        if result == "FAILED":
            # pytest keeps few base temp folders, and other runs prune them: keep the
            # logs and both databases of a failed run where they stay.
            keep = Path(tempfile.gettempdir()) / f"chaos-failed-{BASE_SEED}-{run.name}"
            shutil.copytree(tmp_path, keep, dirs_exist_ok=True)
            print(f"logs and databases of the failed run kept in {keep}")
