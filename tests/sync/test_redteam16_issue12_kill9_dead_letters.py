"""Red team 16 on issue 12, item 1 and commit a02709e: "a dead letter the broker sends
again is counted once" under the crash it was made for: `appliance sync` (a real
process) killed -9 twice while a stream of forged acks (one message, one dead letter
each) comes in, then started again on its persistent session. Whatever was in
flight at each kill (committed and not PUBACKed, or received and not handled) comes
again with DUP set.

Holds: every forged ack is counted exactly once (not lost, not twice), in the
counters the heartbeat and the doctor read and in the table, and sync runs on.
Real mosquitto, real processes, kill -9 by process id.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from appliance.store.db import connect
from appliance.sync import wire
from appliance.system import doctor
from appliance.system.process import stop_process
from tests.helpers.sync_rig import (
    SYNC,
    Attacker,
    device_dead_letters,
    device_state,
    make_config,
    service_process,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(60)

FORGED = 600


def _forged(device_id: str, i: int) -> bytes:
    return wire.encode_ack(wire.Ack(f"rec-{i}", f"{i % 16:x}" * 64, 1.7e9 + i, device_id,
                                    wire.AckStatus.STORED, bytes([i % 256]) * 64))


def _forged_now(config) -> int:
    return device_dead_letters(config).get("forged", 0)


def _rows(config) -> tuple[int, int]:
    conn = connect(config.paths.database)
    try:
        return tuple(conn.execute("SELECT COUNT(*), COUNT(DISTINCT head) FROM "
                                  "sync_dead_letters WHERE kind='forged'").fetchone())
    finally:
        conn.close()


def test_forged_acks_across_two_kill9_of_sync_are_counted_exactly_once(tmp_path, broker):
    config = make_config(tmp_path, broker.port)
    config_file = write_config_file(tmp_path, config)
    acks = wire.acks_topic("bhxh", config.device.id)
    log = tmp_path / "sync.log"
    attacker = Attacker(broker.port)
    procs: list[subprocess.Popen[bytes]] = []
    done = threading.Event()

    def stream() -> None:
        for i in range(FORGED):
            attacker.client.publish(acks, _forged(config.device.id, i), qos=1)
            if i % 20 == 19:
                time.sleep(0.05)  # about 400 a second, over the kills
        done.set()

    try:
        procs.append(service_process(SYNC, config_file, log))
        wait_for(lambda: device_state(config, "sync.state") == "connected", 20, "sync up")
        time.sleep(0.5)  # subscribed
        threading.Thread(target=stream, daemon=True).start()
        for at in (FORGED // 5, FORGED // 2):
            wait_for(lambda at=at: _forged_now(config) >= at, 20, f"{at} forged acks")
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait(10)
            procs.append(service_process(SYNC, config_file, log))
        assert done.wait(20), "the stream did not end"
        wait_for(lambda: _forged_now(config) >= FORGED, 30, "every forged ack counted")
        time.sleep(1.5)  # anything counted twice would show now
        assert procs[-1].poll() is None, log.read_text()[-3000:]
        assert _forged_now(config) == FORGED
        assert device_dead_letters(config)["total"] == FORGED
        assert _rows(config) == (FORGED, FORGED)
        assert f"{FORGED} ack(s) since" in doctor.check_central_key(config).summary
    finally:
        for proc in procs:
            stop_process(proc, timeout=10)
        attacker.close()
    assert "Traceback" not in log.read_text()
