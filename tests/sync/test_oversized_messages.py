"""A message far larger than anything either side reads never reaches its memory.

Why: `appliance sync` runs under MemoryMax=160M and `appliance central` under 512M
(systemd/). A broker left at its defaults (mosquitto's limit is MQTT's own, 256 MB; a
cloud broker's is often as large) forwards whatever anyone publishes on a topic a
service reads, and paho reads a whole packet into memory before any check of ours
runs. A message of a few hundred MB would have the kernel kill the service, and the
broker, which keeps the session, would send it again first at every restart: the
crash loop of "one MQTT message stops the receiver for good", through memory.

Each service tells the broker, in its CONNECT, the largest packet it takes (MQTT v5
Maximum Packet Size): 16 MiB for sync, 64 MiB for the receiver, far above anything
they read and than what the shipped broker config lets through, below what their
MemoryMax survives. MQTT 5.0 (3.1.2.11.4) says the server then discards a larger
message for that client as if it had sent it.

Real processes (`appliance sync`, `appliance central`) and a real mosquitto with no
packet limit of its own; the peak memory is the kernel's (VmHWM).
"""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from appliance.central import receiver
from appliance.sync import publisher, wire
from tests.helpers.mosquitto import shipped_setting
from tests.helpers.processes import memory_max_kib, peak_kib
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    enqueue,
    make_config,
    real_services,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

HUGE = 80 * 1024 * 1024


def test_the_largest_packet_each_side_takes():
    """Far above the largest message each reads and than what the shipped broker
    config lets through (a discarded message keeps its in-flight slot in mosquitto),
    and small enough that three copies fit in the service's MemoryMax."""
    shipped = shipped_setting("max_packet_size")
    for limit, largest, unit in ((publisher.MAX_PACKET_BYTES, wire.MAX_BATCH_ACK_BYTES,
                                  "appliance-sync.service"),
                                 (receiver.MAX_PACKET_BYTES, wire.MAX_MESSAGE_BYTES,
                                  "appliance-central.service")):
        assert limit > 10 * max(largest, shipped)
        assert 3 * limit < memory_max_kib(unit) * 1024 * 0.75, unit


def test_a_huge_message_on_either_side_never_reaches_the_service(tmp_path, broker):
    config = make_config(tmp_path, broker.port)
    with real_services(tmp_path, config) as services, \
            closing(Attacker(broker.port)) as attacker:
        first = enqueue(config, 2)
        wait_for(lambda: all_delivered(config, first), 60, "delivery before the attack")
        before = {name: peak_kib(p.pid) for name, p in services.procs.items()}

        # 80 MiB on the device's ack topic and on another device's records topic.
        junk = b"[" + b"0," * (HUGE // 2) + b"0]"
        attacker.publish(wire.acks_topic(config.mqtt.topic_prefix, config.device.id), junk)
        attacker.publish(wire.records_topic(config.mqtt.topic_prefix, "ghost-01"), junk)
        later = enqueue(config, 2)
        wait_for(lambda: all_delivered(config, later), 60, "delivery after the attack")
        time.sleep(1.0)

        services.assert_running()
        for name, proc in services.procs.items():
            grew = peak_kib(proc.pid) - before[name]
            # A copy of the message alone would be 81,920 KiB.
            assert grew < 16 * 1024, (name, before[name], grew)
        assert_exactly_once(config, first + later)
