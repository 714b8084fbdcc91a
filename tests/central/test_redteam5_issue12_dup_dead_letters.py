"""Red team 5 on issue 12: the dead-letter count when the same junk is sent many times
and the receiver is killed -9 in the middle.

Commit 0981b69 stopped counting a dead letter twice when the broker delivers it again
(MQTT DUP flag, after a restart between the receiver's COMMIT and its PUBACK): a
redelivered message whose sha256 is already in dead_letters on that topic is not
counted (central.store.put_dead_letter(redelivered=True)). Its docstring promises
"the same junk sent anew still counts".

But DUP only says "the broker sent this before", not "the receiver committed it". A
message the receiver had read and not yet committed when it was killed comes again
with DUP, and if an identical junk message was committed earlier (a flood of one
poison message, the most likely kind), it is taken for the redelivery of that one and
never counted. The red team 4 kill -9 test numbers every junk message, so no two
payloads ever match; here they are identical.

Real processes: mosquitto, `appliance central` started, killed -9 mid-flood and
started again (its persistent session keeps what was in flight), and a bare paho
client as the attacker.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.sync import wire
from tests.helpers.junk_flood import flood, held, stop
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.sync_rig import (
    Attacker,
    central_dead_letters,
    make_config,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)

FLOOD = 8_000
KILL_AT = 1_200  # dead letters counted when the receiver is killed
JUNK = b"the same poison, again and again {"
SENTINEL = b"the last one {"


def _sentinel_counted(config: object) -> bool:
    """The sentinel, published after the flood on the same topic, is set aside: the
    broker delivers one topic's QoS 1 messages in order, so every flood message before
    it has been through the receiver."""
    rows = central_store.list_dead_letters(config.central.database)  # type: ignore[attr-defined]
    return any(bytes(r["head"]) == SENTINEL for r in rows[-50:])


def _flood_kill_and_count(tmp_path: Path, broker: MosquittoProcess, numbered: bool) -> None:
    """Flood, kill -9 the receiver mid-flood, start it again: every message counted once."""
    config = make_config(tmp_path, broker.port)
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    topic = wire.records_topic(config.mqtt.topic_prefix, config.device.id)
    attacker = Attacker(broker.port)
    central = start_central(config_file, log)
    try:
        probes = probe_receiver(attacker, config)
        attacker.close()
        with held(central):
            flood(broker.port, topic,
                  [JUNK + (b"%08d" % n if numbered else b"") for n in range(FLOOD)],
                  client_id="same-junk", wait_s=30)
        wait_for(lambda: central_dead_letters(config) >= probes + KILL_AT, 30,
                 "the receiver setting the flood aside")
        os.kill(central.pid, signal.SIGKILL)
        central.wait(10)
        killed_at = central_dead_letters(config)
        assert killed_at < probes + FLOOD, "the kill came after the flood: nothing tested"

        central = start_central(config_file, log)  # the rest waits in its session
        sentinel = Attacker(broker.port, "sentinel")
        try:
            sentinel.publish(topic, SENTINEL)
        finally:
            sentinel.close()
        wait_for(lambda: _sentinel_counted(config), 30, "the receiver through the flood")
        time.sleep(0.5)
        sent = probes + FLOOD + 1
        counted = central_dead_letters(config)
        assert central.poll() is None, log.read_text(errors="replace")[-3000:]
        # Each of the FLOOD messages was published once, anew: each must count once.
        assert counted == sent, (
            f"{counted} dead letters counted for {sent} messages sent "
            f"({sent - counted} never counted; {killed_at} counted at the kill)")
    finally:
        stop(central)


def test_identical_junk_is_counted_exactly_across_a_kill_9(
        tmp_path: Path, broker: MosquittoProcess) -> None:
    """Found by this review: put_dead_letter(redelivered=True) dropped any DUP message
    whose sha256 was already set aside, so identical junk read but not committed
    before a kill -9 was never counted. A redelivery is now known by its packet id
    (with the receiver and the bytes), which junk sent anew does not share."""
    _flood_kill_and_count(tmp_path, broker, numbered=False)


def test_numbered_junk_is_counted_exactly_across_a_kill_9(
        tmp_path: Path, broker: MosquittoProcess) -> None:
    """The control: the same flood and kill, each message different, counts exactly
    (so what the identical flood loses is the deduplication's doing, not the broker's)."""
    _flood_kill_and_count(tmp_path, broker, numbered=True)
