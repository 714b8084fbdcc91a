"""Red team 4 on issue 12, item 5 ("sync and the worker keep running and retry"): the
device's data disk is full at the moment its link to the broker is found dead, while a
scan is half-way through its chunks.

Why this order: a link that dies silently (a cut cable, a hung broker) is noticed only
by the MQTT keepalive, seconds later, while the device has already handed paho the
scan's chunks up to MAX_INFLIGHT_BYTES (4 MB) with no PUBACK back. On a lost link
publisher._Publisher.lost() gives every claimed record back in one write
(release_all -> outbox.retry_many) and then forgets its in-memory state (flights,
paho message ids and their bytes). On a full disk that write raises, the forgetting
never happens, and the next connection (a new paho client, message ids from 1 again)
starts with the previous connection's 4 MB still counted as "handed to paho, not yet
taken by the broker". feed() sends nothing while that count is at the cap, and
nothing ever lowers it (those message ids will never be PUBACKed on this
connection): once space is back no record is claimed or sent, not the half-sent scan,
not a one-page record signed afterwards (in a probe: nothing in 75 s, the status
heartbeat's minute included), until sync restarts or loses its connection again.
The same silent link without the full disk is delivered within a second of the
link's return (the plain test below), so the stall is the full disk's doing.

The broker stands for the silent link: SIGSTOP (its TCP socket stays open, it just
never answers), then SIGCONT once the device has given up on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.store import space
from appliance.store.db import connect
from appliance.store.outbox import OutboxState
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.processes import Processes
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import (
    Attacker,
    Service,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    enqueue,
    make_config,
    outbox_state,
    subscribed_receiver,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(75)

# Over MAX_INFLIGHT_BYTES (4 MB) of chunks, so the device stops at the cap while the
# broker is stopped and the scan's record message is still unsent.
SCAN_BYTES = 6 * 1024 * 1024
KEEPALIVE = 2          # the dead link is noticed in about two keepalives
RETRY_SECONDS = 1.0    # sync tries a full disk again every second (5 s in service)
# Once space is back, a one-page record reaches the receiver in about a second on
# loopback; well under the 60 s heartbeat that would hide the stall.
PROMPT_S = 20.0


def _log(procs: Processes) -> str:
    return (procs.log_dir / "sync.log").read_text(errors="replace")


def _alive(proc: subprocess.Popen[bytes], procs: Processes) -> None:
    assert proc.poll() is None, f"appliance sync exited ({proc.returncode})\n{_log(procs)}"


def _silent_link(tmp_path: Path, broker: MosquittoProcess, services: StartService,
                 full_disk: bool) -> None:
    """A scan half sent when the link goes silent (broker SIGSTOPped); the device's
    disk filled to the last byte meanwhile if `full_disk`; then the link comes back,
    then the space; the scan and a record signed afterwards must arrive promptly."""
    with mounted_tmpfs(tmp_path / "data", "32m") as disk:
        config = config_mod.with_overrides(
            make_config(tmp_path, broker.port, keepalive=KEEPALIVE,
                        chunk_bytes=config_mod.MqttConfig().chunk_bytes),
            paths={"data_dir": str(disk)})
        attacker = Attacker(broker.port)
        subscribed_receiver(services, config, attacker)
        attacker.close()
        [warm] = enqueue(config, 1)
        held = connect(config.paths.database)  # the web, holding the database (its WAL) open
        procs = Processes.for_config(tmp_path, config)
        procs.env[space.RETRY_ENV] = str(RETRY_SECONDS)
        filler: Path | None = None
        stopped = False
        try:
            sync = procs.start("sync", "sync")
            # First contact done: the receiver is known, chunks go binary.
            wait_for(lambda: all_delivered(config, [warm]), 30, "the first record")

            os.kill(broker.pid, signal.SIGSTOP)  # the link goes silent
            stopped = True
            [scan] = enqueue(config, 1, pdf_sizes=(SCAN_BYTES,))
            wait_for(lambda: outbox_state(config, scan.record_id) is OutboxState.SENDING,
                     15, "the scan claimed")
            time.sleep(1.0)  # its chunks handed to paho, up to the cap
            if full_disk:
                filler = fill(disk)
                assert free_bytes(disk) == 0
            lost_at = len(_log(procs))
            wait_for(lambda: "lost" in _log(procs)[lost_at:]
                     and (not full_disk or "data disk full" in _log(procs)[lost_at:]), 30,
                     "sync noticing the dead link")
            _alive(sync, procs)

            seen = _log(procs).count("connected to")
            os.kill(broker.pid, signal.SIGCONT)  # the link is back
            stopped = False
            wait_for(lambda: _log(procs).count("connected to") > seen, 30,
                     "sync connected again")
            if filler is not None:
                filler.unlink()  # and so is the space
                filler = None
            [after] = enqueue(config, 1)

            deadline = time.monotonic() + PROMPT_S
            while time.monotonic() < deadline and not all_delivered(config, [scan, after]):
                _alive(sync, procs)
                time.sleep(0.2)
            assert_no_false_delivery(config)
            assert all_delivered(config, [scan, after]), (
                f"not delivered within {PROMPT_S} s of space coming back: scan "
                f"{outbox_state(config, scan.record_id)}, one-page record "
                f"{outbox_state(config, after.record_id)}")
            assert_exactly_once(config, [warm, scan, after])
            _alive(sync, procs)
        except BaseException:
            print(procs.logs())
            raise
        finally:
            if stopped:
                os.kill(broker.pid, signal.SIGCONT)
            procs.stop_all()
            held.close()
            if filler is not None:
                filler.unlink()


def test_a_dead_link_noticed_with_room_on_disk_resumes_at_once(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    _silent_link(tmp_path, broker, services, full_disk=False)


def test_a_full_disk_when_a_dead_link_is_noticed_does_not_stall_sending(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    """Found by the fourth review: a full disk at a lost connection made lost() raise
    before it forgot the connection's in-flight bytes, so after reconnecting feed()
    stayed at MAX_INFLIGHT_BYTES and sent nothing once space was back. The records of
    the lost connection are now forgotten at once and given back when the disk allows
    (publisher.release_all, release_pending)."""
    _silent_link(tmp_path, broker, services, full_disk=True)
