"""Red team 4 on issue 12, item 5: the device's data disk is full while the receiver's
acknowledgements arrive for records that went out in chunks: bodies too big for one
message (publisher._Publisher.body_bytes, wire.RecordMessage.body_bytes, received by
central.store._chunked_body), scans cut in chunks, and both in one record.

Why: tests/sync/test_redteam_disk.py fills the disk under records whose scans are cut
in chunks, but its receiver starts after the records were published and never had a
session, so no ack reaches the device while the disk is full; and no test fills the
device's disk under a body sent in chunks, whose resume after a restart asks the
receiver about one more "file" (the body, named by the record's sha256) than the
record names. Here the receiver's session exists (it subscribed, then stopped), every
message is queued for it at the broker, the disk fills to the last byte, and only then
does the receiver come back and acknowledge everything at once. The promises: nothing
queued is dropped, nothing is marked delivered while the disk refuses the write (nor
ever without the receiver holding those bytes), sync keeps running, and once space is
back every record is delivered exactly once and byte-identical. The second test also
kills sync -9 on the full disk (the acks held in memory are gone) and restarts it
there, so every record is claimed again as a retry and resumes through a resume query.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.store import space
from appliance.store.db import connect
from appliance.store.outbox import OutboxState
from appliance.sync import wire
from appliance.system import config as config_mod
from tests.helpers.device_records import TestRecord
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.processes import Processes
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import (
    NO_CHUNK_STATE,
    Attacker,
    Service,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    subscribed_receiver,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(75)

RETRY_SECONDS = 1.0   # sync tries a full disk again every second (5 s in service)
FULL_SECONDS = 4.0    # how long the acks wait on the full disk: several retries
ACK_TIMEOUT = 20.0    # no re-send of its own while the test holds the acks back
CHUNK_BYTES = 4096    # a body of a dozen papers does not fit one message


def _log(procs: Processes) -> str:
    return (procs.log_dir / "sync.log").read_text(errors="replace")


def _alive(proc: subprocess.Popen[bytes], procs: Processes) -> None:
    assert proc.poll() is None, f"appliance sync exited ({proc.returncode})\n{_log(procs)}"


def _records_announced(seen: list[tuple[str, bytes]]) -> set[str]:
    """Ids of the records whose record message (alone or in a pack) went through the
    broker: everything of theirs was published before it."""
    ids: set[str] = set()
    for _topic, payload in list(seen):
        try:
            msg = wire.decode_device_message(payload)
        except Exception:  # noqa: BLE001, S112 - chunks of other shapes, not ours to judge
            continue
        if isinstance(msg, wire.RecordMessage):
            ids.add(msg.record_id)
        elif isinstance(msg, wire.RecordPack):
            ids.update(r.record_id for r in msg.records)
    return ids


def _chunked_records(config: config_mod.Config) -> list[TestRecord]:
    """Bodies in chunks (a dozen papers), a body and a scan both in chunks, a scan in
    chunks under a small body, and two small records."""
    bodies = enqueue(config, 2, pdf_sizes=(400,) * 12)
    both = enqueue(config, 1, pdf_sizes=(20_000,) + (400,) * 11)
    scan = enqueue(config, 1, pdf_sizes=(20_000,))
    small = enqueue(config, 2)
    for rec in (*bodies, *both):
        assert len(rec.body_json.encode("utf-8")) > CHUNK_BYTES, "body fits one message"
    return [*bodies, *both, *scan, *small]


def _acks_on_a_full_disk(tmp_path: Path, broker: MosquittoProcess, services: StartService,
                         kill_while_full: bool) -> None:
    with mounted_tmpfs(tmp_path / "data", "8m") as disk:
        config = config_mod.with_overrides(
            make_config(tmp_path, broker.port, chunk_bytes=CHUNK_BYTES,
                        ack_timeout_seconds=ACK_TIMEOUT),
            paths={"data_dir": str(disk)})
        attacker = Attacker(broker.port)
        # The receiver's persistent session exists: what the device sends now is queued.
        subscribed_receiver(services, config, attacker).stop()
        attacker.sniff(wire.records_topic(config.mqtt.topic_prefix, config.device.id))
        records = _chunked_records(config)
        held = connect(config.paths.database)  # the web, holding the database (its WAL) open
        procs = Processes.for_config(tmp_path, config)
        procs.env[space.RETRY_ENV] = str(RETRY_SECONDS)
        filler: Path | None = None
        try:
            sync = procs.start("sync", "sync")
            wanted = {r.record_id for r in records}
            wait_for(lambda: wanted <= _records_announced(attacker.seen), 30,
                     "every record message published (to the stopped receiver's queue)")
            filler = fill(disk)
            assert free_bytes(disk) == 0
            said_full = _log(procs).count("data disk full")
            receiver = services(run_receiver, config)  # its disk has room: it acks all
            wait_for(lambda: len(central_store.list_records(config.central.database))
                     == len(records), 30, "the receiver storing every record")
            wait_for(lambda: _log(procs).count("data disk full") > said_full, 30,
                     "sync's disk-full line")
            end = time.monotonic() + FULL_SECONDS
            while time.monotonic() < end:
                _alive(sync, procs)
                assert all(outbox_state(config, r.record_id) is OutboxState.SENDING
                           for r in records), "an outbox row moved on a full disk"
                time.sleep(0.25)
            assert_no_false_delivery(config)

            if kill_while_full:
                os.kill(sync.pid, signal.SIGKILL)  # the acks it held in memory are gone
                sync.wait(10)
                procs.children.pop("sync")
                said_full = _log(procs).count("data disk full")
                sync = procs.start("sync", "sync")
                wait_for(lambda: _log(procs).count("data disk full") > said_full, 30,
                         "the restarted sync waiting for space")
                _alive(sync, procs)
                assert not all_delivered(config, records)

            filler.unlink()
            filler = None
            wait_for(lambda: all_delivered(config, records), 40,
                     "every record delivered once the disk has room: "
                     + str([outbox_state(config, r.record_id) for r in records]))
            _alive(sync, procs)
            assert receiver.running()
            assert_exactly_once(config, records)
            assert_no_false_delivery(config)
            served = central_store.list_records(config.central.database)
            assert len(served) == len(records), [r["record_id"] for r in served]
            assert central_store.list_rejections(config.central.database) == []
            # A body re-sent for a record already held is dropped with its record message.
            wait_for(lambda: central_store.chunk_state(config.central.database)
                     == NO_CHUNK_STATE, 10, "no chunk left at the receiver: "
                     + str(central_store.chunk_state(config.central.database)))
            # The device set no genuine ack aside (a resume answered twice is "stale").
            assert set(device_dead_letters(config)) <= {"total", "stale"}, \
                device_dead_letters(config)
        except BaseException:
            print(procs.logs())
            raise
        finally:
            procs.stop_all()
            held.close()
            attacker.close()
            if filler is not None:
                filler.unlink()


def test_acks_for_chunked_bodies_and_scans_on_a_full_disk_are_delivered_once(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    _acks_on_a_full_disk(tmp_path, broker, services, kill_while_full=False)


def test_a_kill_on_the_full_disk_then_resume_of_chunked_bodies_delivers_once(
        tmp_path: Path, broker: MosquittoProcess, services: StartService) -> None:
    _acks_on_a_full_disk(tmp_path, broker, services, kill_while_full=True)
