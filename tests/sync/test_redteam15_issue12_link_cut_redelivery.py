"""Red team 15 on issue 12, item 1 and the README's "On the wire": "a redelivery of one
already set aside, after a restart between commit and PUBACK, is not counted twice".

The receiver keys its dead letters by session, epoch and packet id for that reason
(central/store.put_dead_letter). Sync does not: outbox.put_dead_letter inserts and
counts every message it is handed. Here the link between sync and the broker dies
right after sync committed a dead letter, with its PUBACK on the wire (an office's
flaky uplink): a small TCP relay of this file passes the broker's bytes to sync but
drops sync's bytes for a moment, then cuts the connection. sync reconnects with its
persistent session, mosquitto sends the unacknowledged message again (DUP set), and
sync counts it a second time: the heartbeat's dead-letter counters and the doctor's
"N ack(s) ... were signed by none of them" (central_key) say 2 forged acks where one
was sent.

Real mosquitto, sync's own run function, a real TCP connection through the relay.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from appliance.store.db import connect
from appliance.sync import wire
from appliance.sync.publisher import run_publisher
from appliance.system import doctor
from tests.helpers.mosquitto import free_port
from tests.helpers.sync_rig import (
    Attacker,
    device_dead_letters,
    device_state,
    make_config,
    probe,
    wait_for,
)

pytestmark = pytest.mark.timeout(40)


class Relay:
    """A TCP relay on a free loopback port to an upstream port. `hold_upstream` drops
    what clients send (the broker's bytes still reach them); `cut` closes every
    connection now open. Its threads end with their sockets."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.hold_upstream = False
        self.dropped = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port()
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(8)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.socks += [client, up]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream and self.hold_upstream:
                    self.dropped += len(data)
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.closed = True
        self.server.close()
        self.cut()


def _forged_ack(device_id: str) -> bytes:
    """A well-formed ack for this device, signed by nobody the device believes."""
    return wire.encode_ack(wire.Ack("no-such-record", "b" * 64, time.time(), device_id,
                                    wire.AckStatus.STORED, b"\x01" * 64))


def _forged_rows(config) -> int:
    conn = connect(config.paths.database)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM sync_dead_letters WHERE "
                                "kind='forged'").fetchone()[0])
    finally:
        conn.close()


def test_a_dead_letter_redelivered_after_a_link_cut_is_counted_once(
        tmp_path, broker, services):
    relay = Relay(broker.port)
    config = make_config(tmp_path, relay.port)  # sync reaches the broker through the relay
    acks = wire.acks_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    try:
        publisher = services(run_publisher, config)
        wait_for(lambda: device_state(config, "sync.state") == "connected", 20, "sync up")
        probe(lambda: attacker.publish(acks, b"\xff"),
              lambda: device_dead_letters(config).get("total", 0), "sync")
        before = device_dead_letters(config)
        assert before.get("forged", 0) == 0

        relay.hold_upstream = True  # sync's PUBACK will not reach the broker
        attacker.publish(acks, _forged_ack(config.device.id))
        wait_for(lambda: device_dead_letters(config).get("forged", 0) == 1, 10,
                 "the forged ack set aside")
        time.sleep(0.5)  # its PUBACK went out (and was dropped)
        assert relay.dropped > 0, "sync sent nothing while the relay held its bytes"
        relay.hold_upstream = False
        relay.cut()
        wait_for(lambda: relay.connections >= 2, 15, "sync's reconnection")
        wait_for(lambda: device_state(config, "sync.state") == "connected", 15, "sync up")
        time.sleep(2.0)  # mosquitto resends the unacknowledged message at once
        assert publisher.running()

        after = device_dead_letters(config)
        assert after.get("forged", 0) == 1, after
        assert after["total"] == before["total"] + 1, (before, after)
        assert _forged_rows(config) == 1
        check = doctor.check_central_key(config)
        assert "1 ack(s)" in check.summary, check.summary
    finally:
        attacker.close()
        relay.close()
