"""Measure what the durable outbox costs against raw paho publishing, on one broker, in one run.

Two kinds of record, each measured against raw paho QoS 1 publishing of the same bytes
to the same broker right before it:

- metadata: a signed record body (the dossier's fields, codes and audit trail) with no
  file, the bulk of what an office sends;
- scan: the same body naming one file of `scan_bytes` (1 MB by default), sent in
  mqtt.chunk_bytes messages.

Raw: for each record, its body and its file bytes published at QoS 1 in messages no
larger than the outbox's chunks (paho's defaults otherwise, max_inflight 20), timed
from the first publish to the last PUBACK: what a fire-and-forget publisher would
call "sent". Raw subscribed (for context, not the goal's baseline): the same publishing
with a raw paho subscriber (QoS 1, its own process) taking every message off the broker,
timed to the last message it got: the most any paho-based receiver could take in,
storing nothing. Outbox: the same number of records drained by `appliance sync` through
the broker into `appliance central`, timed from the publisher's start to the moment
the device has committed the receiver's (signed) ack of the last one, i.e. "on the
central disk"; the device has delivered to this receiver before (met_before).
ratio = outbox records/s / raw records/s (the bytes are the same, so it is also the
MB/s ratio).

CPU per record, measured in the same runs: the raw publisher's process, and the
outbox's publisher and receiver from their start-up on (the broker's is not counted
in either). On a machine where the three processes share few cores, their sum per
record bounds what the drain can reach, whatever the waiting.

Rounds: the development machine is a shared VM whose speed changes from second to
second (raw paho publishing alone measured 9,300 to 21,600 records/s within minutes),
so one raw phase and one outbox phase a few seconds apart gave ratios from 0.33 to 1.3
for the same code. Each kind is therefore measured in `rounds` rounds (default 3), each
round its raw, raw subscribed and outbox phases back to back (every round's outbox
filled before the first round starts), raw publishing measured right before and right
after the outbox phase and taken as the mean of the two; the figures are each
round's median, and "ratio" is the median of the rounds' ratios ("round_ratios"
lists them all).

The outbox is filled without the scanner, OCR and PDF signing, which are not what is
measured and would take minutes for 10,000 records: one dossier is made through the
records module, and its signed body is cloned with fresh record ids (and, for the
scan kind, a fresh random file each), committed with their outbox rows as sign-off
commits them.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from appliance.central.receiver import run_receiver
from appliance.records import dossiers, pages
from appliance.store import db, outbox
from appliance.store.files import FileStore
from appliance.sync import acksig, wire
from appliance.sync.publisher import PACKS_STATE_KEY, run_publisher
from appliance.system import config as config_mod
from appliance.system.logging import setup_logging

log = logging.getLogger(__name__)

MB = 1_000_000
DEFAULT_SCAN_BYTES = 1024 * 1024
FILL_BATCH = 500
DEFAULT_ROUNDS = 3
DRAIN_TIMEOUT_SECONDS = 600.0
# A folder: the receiver and the publisher each run under cProfile (CPU time) and
# leave their statistics there (<service>-<pid>.prof), to see where a record's time goes.
PROFILE_ENV = "APPLIANCE_BENCH_PROFILE"


@dataclass(frozen=True)
class KindResult:
    """One kind of record: raw paho and the outbox, same bytes, same broker, same run."""

    kind: str
    records: int
    bytes_per_record: int
    raw_records_per_s: float
    outbox_records_per_s: float
    outbox_seconds: float
    raw_subscribed_records_per_s: float = 0.0
    # CPU microseconds per record: the raw publisher's process, and the outbox's
    # publisher and receiver processes (each after its start-up).
    raw_cpu_us_per_record: float = 0.0
    publisher_cpu_us_per_record: float = 0.0
    receiver_cpu_us_per_record: float = 0.0
    # Each round's outbox/raw, its raw and outbox phases back to back (see the module's
    # docstring); empty for a result made from one phase of each.
    round_ratios: tuple[float, ...] = ()

    @property
    def raw_mb_per_s(self) -> float:
        return self.raw_records_per_s * self.bytes_per_record / MB

    @property
    def outbox_mb_per_s(self) -> float:
        return self.outbox_records_per_s * self.bytes_per_record / MB

    @property
    def ratio(self) -> float:
        """The median round's outbox/raw (a round's two phases are seconds apart, the
        rounds are not)."""
        if self.round_ratios:
            return statistics.median(self.round_ratios)
        return self.outbox_records_per_s / self.raw_records_per_s

    @property
    def ratio_to_subscribed(self) -> float:
        """Against raw paho publishing with a raw subscriber taking it all off the broker."""
        return (self.outbox_records_per_s / self.raw_subscribed_records_per_s
                if self.raw_subscribed_records_per_s else 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "raw_mb_per_s": self.raw_mb_per_s,
                "outbox_mb_per_s": self.outbox_mb_per_s, "ratio": self.ratio,
                "ratio_to_subscribed": self.ratio_to_subscribed}

    def summary(self) -> str:
        return (f"{self.kind}: {self.records} records x {self.bytes_per_record:,} B on "
                f"loopback: raw paho QoS 1 {self.raw_records_per_s:,.0f} records/s "
                f"({self.raw_mb_per_s:,.1f} MB/s); outbox end-to-end (acked by the "
                f"receiver) {self.outbox_records_per_s:,.0f} records/s "
                f"({self.outbox_mb_per_s:,.1f} MB/s) in {self.outbox_seconds:.1f} s; "
                f"ratio {self.ratio:.3f} (raw paho with a raw subscriber "
                f"{self.raw_subscribed_records_per_s:,.0f} records/s, outbox "
                f"{self.ratio_to_subscribed:.3f} of it; median of "
                f"{max(1, len(self.round_ratios))} round(s): "
                f"{', '.join(f'{r:.3f}' for r in self.round_ratios) or '-'}); "
                f"CPU per record: raw publisher "
                f"{self.raw_cpu_us_per_record:,.0f} us, outbox publisher "
                f"{self.publisher_cpu_us_per_record:,.0f} us + receiver "
                f"{self.receiver_cpu_us_per_record:,.0f} us")


@dataclass(frozen=True)
class BenchResult:
    kinds: tuple[KindResult, ...]

    @property
    def ratio(self) -> float:
        """The worst kind's ratio: the goal holds only if it holds for every kind."""
        return min(k.ratio for k in self.kinds)

    def kind(self, name: str) -> KindResult:
        return next(k for k in self.kinds if k.kind == name)

    def as_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, **{k.kind: k.as_dict() for k in self.kinds}}

    def summary(self) -> str:
        return "\n".join([*(k.summary() for k in self.kinds), f"worst ratio {self.ratio:.3f}"])


# --- raw paho -----------------------------------------------------------------------


def measure_raw(host: str, port: int, payloads: list[bytes],
                repeat: int) -> tuple[float, float]:
    """`payloads` (one record's messages) published `repeat` times at QoS 1; records/s
    from the first publish to the last PUBACK, and this process's CPU seconds meanwhile
    (paho's network thread included)."""
    total = len(payloads) * repeat
    done = threading.Event()
    acked = [0]

    def on_publish(client: mqtt.Client, userdata: object, mid: int, reason: mqtt.ReasonCode,
                   props: object) -> None:
        acked[0] += 1
        if acked[0] >= total:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    try:
        start, cpu = time.perf_counter(), _cpu_seconds()
        for _ in range(repeat):
            for payload in payloads:
                client.publish("bench/raw", payload, qos=1)
        if not done.wait(DRAIN_TIMEOUT_SECONDS):
            raise TimeoutError(f"only {acked[0]} of {total} PUBACKs")
        return repeat / (time.perf_counter() - start), _cpu_seconds() - cpu
    finally:
        client.disconnect()
        client.loop_stop()


def _subscriber(host: str, port: int, topic: str, total: int, ready: Any, done: Any) -> None:
    """A raw paho subscriber in its own process: perf_counter() of its last message."""
    got = [0]
    finished = threading.Event()

    def on_connect(client: mqtt.Client, userdata: object, flags: object,
                   reason: mqtt.ReasonCode, props: object) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(client: mqtt.Client, *args: object) -> None:
        ready.set()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        got[0] += 1
        if got[0] >= total:
            done.put(time.perf_counter())
            finished.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(host, port)
    client.loop_start()
    try:
        finished.wait(DRAIN_TIMEOUT_SECONDS)
    finally:
        client.disconnect()
        client.loop_stop()


def measure_raw_subscribed(host: str, port: int, payloads: list[bytes], repeat: int) -> float:
    """measure_raw's publishing with a raw subscriber taking every message: records/s
    from the first publish to the subscriber's last message (both clocks are the same
    machine's perf_counter)."""
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Queue()
    topic = f"bench/raw-{uuid.uuid4().hex[:8]}"
    sub = ctx.Process(target=_subscriber, args=(host, port, topic, len(payloads) * repeat,
                                                ready, done), daemon=True)
    sub.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    try:
        if not ready.wait(60):
            raise TimeoutError("the raw subscriber did not subscribe in 60 s")
        client.connect(host, port)
        client.loop_start()
        start = time.perf_counter()
        for _ in range(repeat):
            for payload in payloads:
                client.publish(topic, payload, qos=1)
        return repeat / (done.get(timeout=DRAIN_TIMEOUT_SECONDS) - start)
    finally:
        client.disconnect()
        client.loop_stop()
        sub.join(15)
        if sub.is_alive():
            sub.kill()


# --- filling the outbox -------------------------------------------------------------


def _template(conn: db.StoreConnection, config: config_mod.Config) -> tuple[int, dict[str, Any]]:
    """One record made through the records module; its dossier and its parsed body."""
    files = FileStore(config.paths.files, sealer=db.sealer_of(conn))
    dossier_id = dossiers.create(conn, config, "khac")
    stored = pages.store_page(conn, files, dossier_id, None, Image.new("RGB", (32, 32), "white"),
                              "Tờ khai", dpi=200)
    pages.store_paper_pdf(conn, files, stored.paper_id, b"%PDF-1.7\n" + os.urandom(200),
                          {"values": {"full_name": "NGUYỄN VĂN AN", "so_bhxh": "0123456789"}})
    dossiers.submit(conn, dossier_id)
    record_id = dossiers.sign_off(conn, config, dossier_id, "bench", sign_results=False)
    body = json.loads(dossiers.record_of(conn, record_id).body_json)
    # Only the clones are measured. A sync already running (the chaos test fills while
    # it drains) may have claimed the template meanwhile: then it stays in the outbox,
    # a genuine record like the clones; deleted after its claim, it reached the central
    # office with no outbox row, one record more than the device had sent.
    with db.transaction(conn):
        conn.execute("DELETE FROM outbox WHERE record_id=? AND last_attempt_at IS NULL",
                     (record_id,))
    return dossier_id, body


def fill_outbox(config: config_mod.Config, count: int, file_bytes: int) -> int:
    """`count` signed records in the outbox; returns the bytes each one carries (body +
    file). file_bytes=0: metadata only (the paper names no file)."""
    from appliance.records import signing

    conn = db.connect(config.paths.database, key_file=config.paths.key_file)
    files = FileStore(config.paths.files, sealer=db.sealer_of(conn))
    try:
        dossier_id, template = _template(conn, config)
        carried = 0
        for start in range(0, count, FILL_BATCH):
            rows = []
            for _ in range(min(FILL_BATCH, count - start)):
                body = json.loads(json.dumps(template))
                body["record_id"] = dossiers.new_record_id()
                paper = body["papers"][0]
                if file_bytes:
                    sha = files.put(os.urandom(file_bytes), ".pdf")
                    paper["file"] = {**paper["file"], "sha256": sha, "size": file_bytes}
                else:
                    paper["file"] = None
                encoded = signing.encode(body)
                carried = len(encoded.body_json.encode("utf-8")) + file_bytes
                rows.append((body["record_id"], encoded))
            with db.transaction(conn):
                for record_id, encoded in rows:
                    conn.execute(
                        "INSERT INTO records(record_id, dossier_id, body_json, sha256, "
                        "created_at) VALUES (?, ?, ?, ?, ?)",
                        (record_id, dossier_id,
                         db.seal_text(conn, encoded.body_json,
                                      db.aad("records", "body_json", record_id)),
                         encoded.sha256, time.time()))
                    outbox.enqueue(conn, record_id)
        return carried
    finally:
        conn.close()


def met_before(config: config_mod.Config) -> None:
    """The device has delivered to this receiver before, as a device draining a backlog
    in an office has: it knows the receiver reads packs. A device meeting a receiver for
    the first time in its life sends its first few records one per message until the
    receiver answers (sync's first contact, about 60 ms of a 1.2 s drain here); the
    fleet bench, whose devices are new, measures that."""
    conn = db.connect(config.paths.database, key_file=config.paths.key_file)
    try:
        with db.transaction(conn):
            db.set_state(conn, PACKS_STATE_KEY, "1")
    finally:
        conn.close()


def record_payloads(body_bytes: int, file_bytes: int, chunk_bytes: int) -> list[bytes]:
    """Raw messages carrying one record's bytes, cut like the outbox cuts its files for
    a receiver that reads binary chunks (appliance central does)."""
    step = wire.chunk_data_bytes(chunk_bytes, binary=True)
    out = [os.urandom(body_bytes)]
    for offset in range(0, file_bytes, step):
        out.append(os.urandom(min(step, file_bytes - offset)))
    return out


# --- the outbox end to end ----------------------------------------------------------


def _all_delivered(conn: db.StoreConnection) -> bool:
    """No row left to deliver: one index probe, not a count of the delivered rows, so
    that watching every 10 ms takes next to nothing from the processes measured (a
    count over 10,000 rows of the state index cost up to half a millisecond each)."""
    return conn.execute("SELECT 1 FROM outbox WHERE state IN (?, ?) LIMIT 1",
                        (outbox.OutboxState.PENDING.value,
                         outbox.OutboxState.SENDING.value)).fetchone() is None


def bench_config(host: str, port: int, workdir: Path) -> config_mod.Config:
    """Device and receiver as in an office: signed acks, verified on the device.

    Each round has topics of its own (its own prefix): a receiver's session that
    outlived its round (a bench stopped half-way, see forget_sessions) then never takes
    copies of a later round's records, nor a real device's on a shared broker."""
    keys = workdir / "keys"
    private, public = keys / "central-ack.key", keys / "central-ack.pub"
    if not private.exists():
        acksig.generate_key(private, public)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    return config_mod.with_overrides(
        config_mod.Config(),
        device={"id": name},
        paths={"data_dir": str(workdir / "device")},
        mqtt={"host": host, "port": port, "ack_timeout_seconds": 30.0,
              "central_public_key": str(public), "topic_prefix": name},
        central={"database": str(workdir / "central.sqlite3"), "signing_key": str(private)},
    )


def _serve(service: str, config: config_mod.Config, client_id: str,
           ready: Any = None, cpu_dir: str = "") -> None:
    """A child process running the receiver or the publisher until SIGTERM; `ready`
    (an Event) is set when it says READY=1, so its start-up is not timed. At its end it
    writes the CPU seconds it spent after READY=1 into `cpu_dir` (<service>.cpu)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    # Logging as the services log (INFO), into a file beside the bench's databases: a
    # line per record would cost here what it costs them (under systemd, the journal).
    log_file = (Path(config.paths.database).parent / f"{service}.log").open("a")
    setup_logging(f"bench-{service}", "INFO", stream=log_file)
    profile_dir = os.environ.get(PROFILE_ENV)
    cpu_at_ready: list[float] = []

    def notify(message: str) -> None:
        if message == "READY=1":
            cpu_at_ready.append(_cpu_seconds())
            if ready is not None:
                ready.set()

    profiler = None
    if profile_dir:
        import cProfile

        # CPU time, not wall time: waits (select, fsync) would otherwise hide the costs.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    try:
        if service == "receiver":
            run_receiver(config, stop, notify, client_id=client_id)
        else:
            run_publisher(config, stop, notify)
    finally:
        if profiler is not None and profile_dir:
            profiler.disable()
            profiler.dump_stats(str(Path(profile_dir) / f"{service}-{os.getpid()}.prof"))
        if cpu_dir and cpu_at_ready:
            (Path(cpu_dir) / f"{service}.cpu").write_text(
                f"{_cpu_seconds() - cpu_at_ready[0]:.6f}\n", encoding="ascii")
        log_file.close()


def _cpu_seconds() -> float:
    """User + system CPU of this process so far, all its threads (os.times() counts in
    clock ticks, 10 ms: too coarse for a short run)."""
    return time.process_time()


_CONNECTED = "receiver connected"


def _said_connected(log: Path) -> int:
    return log.read_text(errors="replace").count(_CONNECTED) if log.exists() else 0


def _wait_receiver_subscribed(log: Path, receiver: Any, before: int) -> None:
    """Until the receiver's log (_serve's, appended to) says once more than `before`
    that it connected, plus a moment: it sends its SUBSCRIBE just before that line, and
    the publisher, a process yet to be spawned, publishes later still. Was a fixed 2 s;
    a receiver up in 0.5 s waited the rest."""
    deadline = time.monotonic() + 60
    while _said_connected(log) <= before:
        if time.monotonic() > deadline:
            raise TimeoutError("the receiver did not connect in 60 s")
        if not receiver.is_alive():
            raise RuntimeError("the receiver exited at start")
        time.sleep(0.05)
    time.sleep(0.2)


def forget_sessions(host: str, port: int, client_ids: list[str]) -> None:
    """End the broker sessions a round's services leave behind.

    Both connect as in service, with a session kept a week after they go (sync/client.py).
    Each round's receiver had a client id of its own, so every round left a session
    subscribed to every device's records, and the broker kept a copy of each later
    record for it (up to max_queued_messages: 100,000 in the test broker, whose memory
    grew by hundreds of MB over a few runs). A connection under the same id with a clean
    start and no expiry takes each session over and ends it at its disconnect."""
    for client_id in client_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        connected = threading.Event()
        client.on_connect = lambda *_args, done=connected: done.set()
        try:
            client.connect(host, port, clean_start=True)  # expiry absent: 0, ends with us
            client.loop_start()
            if not connected.wait(10):
                log.warning("bench: could not end the broker session of %s", client_id)
        except OSError as e:
            log.warning("bench: could not end the broker session of %s: %s", client_id, e)
        finally:
            client.disconnect()
            client.loop_stop()


def measure_outbox(config: config_mod.Config, count: int) -> tuple[float, dict[str, float]]:
    """Seconds from the publisher's start to the last ack committed on the device, and
    the CPU seconds each process spent after its start-up ({"publisher": s,
    "receiver": s}; each stops right after the last ack, so the figures are the drain's).

    The receiver and the publisher run as their own processes, as `appliance central`
    and `appliance sync` do (in one process they would share one interpreter lock).
    """
    ctx = multiprocessing.get_context("spawn")
    cpu_dir = Path(config.paths.database).parent / "cpu"
    cpu_dir.mkdir(parents=True, exist_ok=True)
    for old in cpu_dir.glob("*.cpu"):
        old.unlink()
    receiver_id = f"bench-central-{uuid.uuid4().hex[:8]}"
    procs = [ctx.Process(target=_serve, args=("receiver", config, receiver_id, None,
                                              str(cpu_dir)),
                         daemon=True)]
    receiver_log = Path(config.paths.database).parent / "receiver.log"
    connected_before = _said_connected(receiver_log)
    procs[0].start()
    conn = db.connect(config.paths.database, key_file=config.paths.key_file)
    try:
        _wait_receiver_subscribed(receiver_log, procs[0], connected_before)
        ready = ctx.Event()
        publisher = ctx.Process(target=_serve, args=("publisher", config, "", ready,
                                                     str(cpu_dir)), daemon=True)
        publisher.start()
        procs.append(publisher)
        if not ready.wait(60):
            raise TimeoutError("the publisher did not start in 60 s")
        start = time.perf_counter()
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while not _all_delivered(conn):
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox benchmark did not finish in {DRAIN_TIMEOUT_SECONDS} s")
            if not all(p.is_alive() for p in procs):
                raise RuntimeError("the receiver or the publisher exited during the benchmark")
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        delivered = conn.execute("SELECT COUNT(*) FROM outbox WHERE state=?",
                                 (outbox.OutboxState.DELIVERED.value,)).fetchone()[0]
        if delivered != count:
            raise RuntimeError(f"{delivered} of {count} records delivered")
    finally:
        conn.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
        forget_sessions(config.mqtt.host, config.mqtt.port, [receiver_id, config.device.id])
    cpu = {}
    for service in ("publisher", "receiver"):
        found = cpu_dir / f"{service}.cpu"
        cpu[service] = float(found.read_text(encoding="ascii")) if found.exists() else 0.0
    return seconds, cpu


def run_kind(host: str, port: int, kind: str, count: int, file_bytes: int,
             workdir: Path, rounds: int = DEFAULT_ROUNDS) -> KindResult:
    """`rounds` rounds of raw, raw subscribed and outbox, each outbox filled first."""
    configs = [bench_config(host, port, workdir / f"round-{n}") for n in range(max(1, rounds))]
    carried = 0
    for config in configs:
        carried = fill_outbox(config, count, file_bytes)
        met_before(config)
    payloads = record_payloads(carried - file_bytes, file_bytes, configs[0].mqtt.chunk_bytes)
    per_record = 1e6 / count
    measured: list[tuple[float, float, float, float, float, float, float]] = []
    for config in configs:
        subscribed = measure_raw_subscribed(host, port, payloads, count)
        before, cpu_before = measure_raw(host, port, payloads, count)
        seconds, cpu = measure_outbox(config, count)
        after, cpu_after = measure_raw(host, port, payloads, count)
        raw, raw_cpu = (before + after) / 2, (cpu_before + cpu_after) / 2
        measured.append((raw, count / seconds, seconds, subscribed, raw_cpu * per_record,
                         cpu["publisher"] * per_record, cpu["receiver"] * per_record))
    medians = [statistics.median(column) for column in zip(*measured, strict=True)]
    return KindResult(kind, count, carried, *medians,
                      round_ratios=tuple(m[1] / m[0] for m in measured))


def run_bench(host: str, port: int, *, metadata: int = 2000, scans: int = 50,
              scan_bytes: int = DEFAULT_SCAN_BYTES, workdir: Path | None = None,
              rounds: int = DEFAULT_ROUNDS) -> BenchResult:
    """Both kinds (a count of 0 skips one), each round in its own device and central
    database."""
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        root = workdir or Path(tmp)
        kinds = []
        if metadata:
            kinds.append(run_kind(host, port, "metadata", metadata, 0, root / "metadata",
                                  rounds))
        if scans:
            kinds.append(run_kind(host, port, "scan", scans, scan_bytes, root / "scan",
                                  rounds))
    return BenchResult(tuple(kinds))


def add_bench_sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--records", type=int, default=2000,
                        help="metadata records (no file); 0 skips them")
    parser.add_argument("--scans", type=int, default=50,
                        help="records with one scanned file; 0 skips them")
    parser.add_argument("--scan-bytes", type=int, default=DEFAULT_SCAN_BYTES,
                        help="bytes of each scan record's file")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="rounds of raw and outbox phases back to back; the median "
                             "round's figures are given")


def cmd_bench_sync(args: argparse.Namespace) -> int:
    """Needs a running broker at --host/--port (tests start their own mosquitto)."""
    result = run_bench(args.host, args.port, metadata=args.records, scans=args.scans,
                       scan_bytes=args.scan_bytes, rounds=args.rounds)
    if getattr(args, "json", False):
        print(json.dumps(result.as_dict()))
    else:
        print(result.summary())
    return 0
