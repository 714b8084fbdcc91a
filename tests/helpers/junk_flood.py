"""Dead-letter floods against a real `appliance central`: junk published through paho as
fast as the broker takes it, the receiver stopped by PID, and the dead-letter count read
once it has settled.

Why one module: the red-team tests of issue 12 that count dead letters across a kill -9
(identical junk, broker crashes, shared certificates, a report read under a running
receiver) all need the same attacker, the same clean stop and the same "has the count
stopped moving" wait; each wrote its own copy, and copies drift. What differs between
those tests (the client id, TLS, the payloads, how long a publish may wait) is a
parameter here, so each test still states it where it matters.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.system import config as config_mod
from tests.helpers.sync_rig import central_dead_letters


def flood(port: int, topic: str, payloads: Iterable[bytes], *, client_id: str,
          wait_s: float, tls: tuple[Path, Path, Path] | None = None) -> None:
    """Publish each of `payloads` on `topic`, QoS 1, as fast as the broker takes them,
    and return once the broker has acknowledged every one.

    A bare paho client rather than the product's publisher: the attacker is whoever can
    reach the broker, and up to 1,000 messages in flight make the receiver fall behind,
    so that a kill -9 finds messages read but not yet committed. `tls` is (CA, client
    certificate, key) for a device with a genuine certificate; `wait_s` bounds the wait
    for each PUBACK, and a message the broker never takes fails the test, since a flood
    that did not arrive tests nothing."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    if tls is not None:
        client.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]), keyfile=str(tls[2]))
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(wait_s)
            assert info.is_published(), "the broker did not take the flood"
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def held(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """The receiver stopped (SIGSTOP) while a flood is published and continued (SIGCONT)
    after it: the broker queues the flood for it, so a kill or a broker stop made once
    it has set a few aside lands mid-flood however fast it is beside the publisher. On
    a loaded CI machine a receiver kept pace with the flood and had taken all of it
    before the stop ("nothing tested")."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID (a clean stop: the receiver commits and checkpoints), SIGKILL if it
    hangs for 15 s. By PID and not by name, so that nothing but the test's own process
    is touched; a process already gone is left alone."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def settled_dead_letters(config: config_mod.Config, quiet_s: float, timeout: float) -> int:
    """The central dead-letter count once it has not moved for `quiet_s` seconds.

    After a kill -9 and a restart the broker redelivers what was in flight at its own
    pace, so no count reached along the way says the receiver is through; a count that
    stays put for a while does. Fails the test if it is still moving after `timeout`."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = central_dead_letters(config)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the dead-letter count never settled (last {last})")


def receiver_connections(log: Path) -> int:
    """How many times the receiver writing `log` has connected to the broker (its
    "receiver connected" lines): a count that grows says a restarted receiver, or one
    that reconnected to a restarted broker, is back."""
    return log.read_text(errors="replace").count("receiver connected")
