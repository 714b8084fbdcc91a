"""Red team 18 (issue 12): messages just under the Maximum Packet Size each service
announces (sync 16 MiB, receiver 64 MiB), several in a row, against the MemoryMax each
runs under (systemd/: sync 160M, central 512M).

3c62f78 raised the announced limits far above anything either side reads, saying they
stay "under what MemoryMax survives". A broker left at its defaults forwards whatever
anyone publishes up to those limits, so the real processes' peak resident memory
(VmHWM) after such messages must stay under their MemoryMax, or the kernel kills the
service and the broker sends the same messages again at every restart.

Real processes (`appliance sync`, `appliance central`) and a real mosquitto with no
packet limit of its own.
"""

from __future__ import annotations

import time
from contextlib import closing

import pytest

from appliance.central import receiver
from appliance.sync import publisher, wire
from tests.helpers.processes import memory_max_kib, peak_kib
from tests.helpers.sync_rig import (
    CENTRAL,
    SYNC,
    Attacker,
    all_delivered,
    central_dead_letters,
    device_dead_letters,
    enqueue,
    make_config,
    real_services,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

# Room for the fixed header, the topic and the packet id inside the announced limit.
SLACK = 4096


def run_largest(tmp_path, broker, entry: str, unit: str, topic_of, limit: int,
                count: int, set_aside) -> tuple[int, int, int]:
    config = make_config(tmp_path, broker.port)
    with real_services(tmp_path, config) as services:
        first = enqueue(config, 1)
        wait_for(lambda: all_delivered(config, first), 30, "delivery before the messages")
        name = "sync" if entry == SYNC else "central"
        pid = services.procs[name].pid
        before_dead = set_aside(config)
        payload = b"x" * (limit - SLACK)
        with closing(Attacker(broker.port)) as attacker:
            for _ in range(count):
                attacker.publish(topic_of(config), payload)
        wait_for(lambda: set_aside(config) >= before_dead + count, 40,
                 "every message set aside (so none was discarded by the broker)")
        time.sleep(0.5)
        services.assert_running()
        return peak_kib(pid), memory_max_kib(unit), len(payload)


def test_sync_largest_acks_stay_under_its_memory_max(tmp_path, broker):
    peak, memory_max, size = run_largest(
        tmp_path, broker, SYNC, "appliance-sync.service",
        lambda c: wire.acks_topic(c.mqtt.topic_prefix, c.device.id),
        publisher.MAX_PACKET_BYTES, 4, lambda c: sum(device_dead_letters(c).values()))
    print("sync peak KiB", peak, "of", memory_max, "message", size)
    assert peak < memory_max * 0.9, (peak, memory_max)


def test_receiver_largest_records_stay_under_its_memory_max(tmp_path, broker):
    peak, memory_max, size = run_largest(
        tmp_path, broker, CENTRAL, "appliance-central.service",
        lambda c: wire.records_topic(c.mqtt.topic_prefix, "ghost-01"),
        receiver.MAX_PACKET_BYTES, 3, central_dead_letters)
    print("central peak KiB", peak, "of", memory_max, "message", size)
    assert peak < memory_max * 0.9, (peak, memory_max)
