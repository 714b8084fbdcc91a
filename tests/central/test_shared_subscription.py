"""Three `appliance central` processes share one MQTT v5 subscription ($share/<group>/...)
and one database; one of them is killed with SIGKILL mid-stream and restarted.

Every record must end up at the central office exactly once and byte-identical, files
included, and no record may be marked delivered on the device that the central store
lacks. Run on PostgreSQL (the engine meant for several receivers) and on one SQLite
file (writers serialised by BEGIN IMMEDIATE: safe, if not faster).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from appliance.central.receiver import subscription
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers import postgres as pg_helpers
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once_everywhere,
    central_read,
    enqueue,
    make_config,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(240)
RECORDS = 240
RECEIVERS = 3
GROUP = "central-7f3a9c2e51d8b604"


def counted(config: config_mod.Config, what: str) -> int:
    """Rows in the central records table, or a counter; 0 while the database is new."""
    if what == "records":
        return central_read(
            config, lambda conn: int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]),
            0)
    return central_read(config, lambda conn: conn.counter(what), 0)


def start_group(tmp_path: Path, config: config_mod.Config,
                count: int) -> tuple[Path, list[Path], list[subprocess.Popen[bytes]]]:
    """`count` receivers of config's group as real processes, central-0, central-1, ...:
    (their config file, their logs, the processes)."""
    config_file = write_config_file(tmp_path, config)
    logs = [tmp_path / f"central-{n}.log" for n in range(count)]
    return config_file, logs, [start_central(config_file, logs[n], "--client-id",
                                             f"central-{n}") for n in range(count)]


def wait_subscribed(attacker: Attacker, config: config_mod.Config, logs: list[Path]) -> None:
    """Until every receiver connected, and one of them took the probe's junk."""
    probe_receiver(attacker, config, "the receivers")
    wait_for(lambda: all("receiver connected" in log.read_text(errors="replace")
                         for log in logs), 30, f"{len(logs)} receivers connected")
    time.sleep(0.5)  # their SUBSCRIBE follows the CONNACK


def stop_receivers(receivers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to those still running, then SIGKILL to any that hang, by PID."""
    for proc in receivers:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in receivers:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def served_count(config: config_mod.Config) -> int:
    return counted(config, "records")


def test_the_subscription_is_shared_only_when_a_group_is_named(tmp_path):
    plain = make_config(tmp_path, 1883, signed=False)
    shared = make_config(tmp_path, 1883, signed=False,
                         central={"share_group": "g1-5d0c7e9a2b41f836"})
    assert subscription(plain) == "bhxh/devices/+/records"
    assert subscription(shared) == "$share/g1-5d0c7e9a2b41f836/bhxh/devices/+/records"
    with pytest.raises(config_mod.ConfigError, match="share_group"):
        config_mod.validate(make_config(tmp_path, 1883, central={"share_group": "a/b"}))
    # A name a device could guess (the README's example before) is refused.
    for guessable in ("central", "g1", "receivers-2026"):
        with pytest.raises(config_mod.ConfigError, match="secret"):
            config_mod.validate(make_config(tmp_path, 1883,
                                            central={"share_group": guessable}))


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_three_receivers_one_killed_mid_stream_lose_and_duplicate_nothing(
        engine, tmp_path, broker, services, request):
    # A record's chunks and the record itself may reach different receivers, so its
    # transfer stays open a little longer than behind one receiver: more transfers
    # than the device's window (64) may be open at once (README, "Thousands of devices").
    central: dict[str, object] = {"share_group": GROUP, "max_transfers_per_device": 256}
    if engine == "postgresql":
        central["postgres_dsn"] = request.getfixturevalue("pg_server").create_database()
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=4.0, central=central)
    config_file, logs, receivers = start_group(tmp_path, config, RECEIVERS)
    attacker = Attacker(broker.port)
    try:
        wait_subscribed(attacker, config, logs)
        # Two chunks + the record, then one chunk + the record: mosquitto deals a shared
        # subscription's messages round robin, so with three messages per record and
        # three receivers every record message would reach the same one.
        recs = (enqueue(config, RECORDS // 2, pdf_sizes=(3000,))
                + enqueue(config, RECORDS - RECORDS // 2, pdf_sizes=(1000,)))
        publisher = services(run_publisher, config)
        wait_for(lambda: served_count(config) >= RECORDS // 4, 90, "a quarter stored")
        os.kill(receivers[0].pid, signal.SIGKILL)
        receivers[0].wait(10)
        assert served_count(config) < RECORDS, "killed too late to test anything"
        receivers[0] = start_central(config_file, logs[0], "--client-id", "central-0")
        wait_for(lambda: all_delivered(config, recs), 150, "every record delivered")
        for proc, log in zip(receivers, logs, strict=True):
            assert proc.poll() is None, log.read_text(errors="replace")
        assert publisher.running()
        assert_exactly_once_everywhere(config, recs)
        # A record stored alone ("stored record ...") or a pack's ("stored N new record(s)").
        handled = [len(re.findall(r"stored (?:record|\d+ new record)",
                                  log.read_text(errors="replace"))) for log in logs]
        assert sum(1 for n in handled if n) >= 2, f"the broker did not share: {handled}"
    finally:
        attacker.close()
        stop_receivers(receivers)



def test_a_receiver_that_stays_down_holds_back_no_record(tmp_path, broker, services):
    """One receiver of two killed and left down. mosquitto deals a group's messages to
    every member that still has a session, connected or not: with the week-long session
    a lone receiver keeps, half of every device's messages went into the dead one's
    queue and its records waited for their device's ack timeout (and half the re-sends
    too). A receiver of a group keeps its session only central.shared_session_seconds
    (60 by default; 2 here), after which the other one takes every message: every
    record is delivered well inside one ack timeout, at its first try."""
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=30.0,
                         central={"share_group": GROUP, "shared_session_seconds": 2})
    _config_file, logs, receivers = start_group(tmp_path, config, 2)
    attacker = Attacker(broker.port)
    try:
        wait_subscribed(attacker, config, logs)
        os.kill(receivers[1].pid, signal.SIGKILL)
        receivers[1].wait(10)
        wait_for(lambda: re.search(r"(Socket error on client|Client) central-1\b",
                                   broker.log()), 10, "the broker to see central-1 go")
        time.sleep(2 + 2)  # its session's expiry, and mosquitto's next look at it
        # A file and a record message each: many messages, which the broker deals in turn.
        recs = enqueue(config, 20, pdf_sizes=(3000,))
        publisher = services(run_publisher, config)
        wait_for(lambda: all_delivered(config, recs), 20,
                 "every record inside the 30 s ack timeout")
        with sqlite3.connect(config.paths.database) as device:
            tries = [n for (n,) in device.execute("SELECT attempts FROM outbox")]
        assert tries and set(tries) == {1}, tries
        assert publisher.running() and receivers[0].poll() is None
        assert_exactly_once_everywhere(config, recs)
    finally:
        attacker.close()
        stop_receivers(receivers)
