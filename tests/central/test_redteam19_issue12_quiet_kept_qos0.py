"""Red team 19 (issue 12, commit cf00ddc): the receiver's safety net against a broker
that stops sending on a live connection (mosquitto keeps a send slot for every message
it discards as larger than the receiver's Maximum Packet Size) is _Receiver.quiet():
after central.quiet_reconnect_seconds without a QoS 1 message it connects again,
"only when no batch is open and nothing is waiting". QoS 0 messages flow past a spent
quota, and the commit says they do not count - but they still fill `waiting`.

With a share group (several receivers on one PostgreSQL), a record message whose
files are not there is kept up to INCOMPLETE_WAIT_SECONDS (10 s) for another receiver
to store them, whatever its QoS. So whoever may publish on a records topic (any
device, on its own) keeps the receiver from ever connecting again by publishing, at
QoS 0, one such record every few seconds: on a receiver whose quota was spent by
oversized messages, the very attack quiet() is there for, nothing QoS 1 reaches it
again for as long as the connection lasts. A QoS 0 message kept waiting has no
PUBACK to lose at a reconnect.

Real mosquitto; the receiver's own run function in a thread, its connect() counted;
the attacker a bare MQTT client. The quota itself is not spent here (512 messages
over 64 MiB); what is shown is that quiet() never fires under the QoS 0 trickle, while
it does without it (the setup step).

Fixed since: quiet() no longer waits for what is kept waiting (a QoS 1 record kept
came less than 10 s ago, and a reconnect gives it back to the broker).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import closing

import pytest

from appliance.central import receiver as receiver_mod
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from tests.helpers.sync_rig import Attacker, make_config, wait_for

pytestmark = pytest.mark.timeout(60)

GROUP = "central-2c7e91d04b6fa385"
DEVICE = "kiosk-07"
QUIET = 1.5
ATTACK_SECONDS = 9.0


def kept_record(n: int) -> bytes:
    """A record naming a file the receiver does not hold: kept for another receiver."""
    sha = hashlib.sha256(f"never sent {n}".encode()).hexdigest()
    body = json.dumps({"record_id": f"r-{n}", "device_id": DEVICE, "dossier_code": "D-1",
                       "papers": [{"result_code": "D-1.01",
                                   "file": {"sha256": sha, "size": 5000}}]})
    return wire.encode_record(wire.RecordMessage(
        f"r-{n}", hashlib.sha256(body.encode()).hexdigest(), body))


def test_a_qos0_trickle_of_kept_records_does_not_stop_the_quiet_reconnect(
        tmp_path, broker, services, monkeypatch):
    config = make_config(tmp_path, broker.port,
                         central={"share_group": GROUP, "quiet_reconnect_seconds": QUIET})
    connects: list[float] = []
    real_connect = receiver_mod._Receiver.connect

    def counted(self: receiver_mod._Receiver) -> None:
        real_connect(self)
        connects.append(time.monotonic())

    monkeypatch.setattr(receiver_mod._Receiver, "connect", counted)
    receiver = services(run_receiver, config)
    try:
        wait_for(lambda: len(connects) >= 3, 15, "quiet reconnects with nobody sending")
    except AssertionError as e:
        raise RuntimeError(f"setup: {e}") from None

    topic = wire.records_topic(config.mqtt.topic_prefix, DEVICE)
    with closing(Attacker(broker.port, client_id="kiosk-07")) as device:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < ATTACK_SECONDS:
            device.client.publish(topic, kept_record(n), qos=0)
            n += 1
            time.sleep(0.4)
    if not receiver.running():
        raise RuntimeError(f"the receiver stopped: {receiver.error!r}")
    later = [t - start for t in connects if t > start + QUIET + 0.5]
    # Without the trickle: one every QUIET seconds, about five in ATTACK_SECONDS.
    assert len(later) >= 2, (
        f"{len(later)} reconnect(s) in {ATTACK_SECONDS - QUIET - 0.5:.1f} s with no QoS 1 "
        f"message (quiet_reconnect_seconds {QUIET}); all connects: "
        f"{[round(t - start, 2) for t in connects]}")
