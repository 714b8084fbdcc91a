"""Red team 6 on issue 12: whose packet id is it? The dead-letter redelivery key
(commit ce81193) under the README's production identity set-up.

put_dead_letter recognises a redelivery (MQTT DUP) by sha256(delivery + NUL + payload)
where delivery is f"{receiver.client_id}/{packet id}" (receiver._Receiver.dead_letter).
Packet ids are the broker's, one sequence per MQTT session, so the key is unique only
if `client_id` names the session. The README's topology for several receivers gives
each its own client certificate and says the broker makes the certificate's CN its
client id (`use_username_as_clientid`, provisioning/mosquitto-broker.conf), and keeps
`--client-id` for "a lab" without certificates. With that set-up every receiver still
carries the configured central.client_id (default "appliance-central") into the key,
so two receivers sharing the subscription produce the same keys for their own packet
ids: receiver 1's packet 17 and receiver 2's packet 17 of the same junk are one
"delivery". A receiver killed -9 mid-flood gets its uncommitted messages back with
DUP under packet ids the other receiver has already used for identical junk, and
they are taken for redeliveries and never counted.

Real processes: mosquitto with TLS client certificates and the shipped identity lines,
two `appliance central` processes sharing one SQLite file and one subscription, each
with its own certificate (CN central.bhxh / central-2.bhxh), one killed -9 mid-flood
and started again; the attacker is a device with a genuine certificate publishing the
same junk on its own records topic. The control gives the receivers distinct
`--client-id`s (the lab set-up), where the count is exact.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from appliance.sync import wire
from tests.helpers.certs import client_certificate, make_pki
from tests.helpers.junk_flood import flood, held, settled_dead_letters, stop
from tests.helpers.mosquitto import TlsFiles, provisioning_identity_lines
from tests.helpers.sync_rig import (
    Brokers,
    central_dead_letters,
    make_config,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(120)

GROUP = "g6-4c1e9b7a20d35f86"
FLOOD = 4_000
KILL_AT = 900  # dead letters counted when receiver 2 is killed
JUNK = b"one poison message, sent again and again {"
RECEIVERS = ("central.bhxh", "central-2.bhxh")


def _flood_kill_and_count(tmp_path: Path, brokers: Brokers, *, own_ids: bool) -> None:
    """Two receivers (TLS, CN as client id) share a subscription and a SQLite file; the
    same junk FLOOD times, receiver 2 killed -9 mid-flood and restarted: the count must
    be exactly what was sent. own_ids: each also gets its own --client-id."""
    pki = make_pki(tmp_path / "pki", client_cn="kiosk-01")
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key),
                           anonymous=False, extra_config=provisioning_identity_lines())
    base = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert),
                       cert_file=str(pki.client_cert), key_file=str(pki.client_key),
                       central={"share_group": GROUP})
    files, logs = [], []
    for n, cn in enumerate(RECEIVERS):
        cert, key = client_certificate(pki, cn)
        config = dataclasses.replace(base, mqtt=dataclasses.replace(
            base.mqtt, cert_file=str(cert), key_file=str(key)))
        folder = tmp_path / f"r{n}"
        folder.mkdir()
        files.append(write_config_file(folder, config))
        logs.append(folder / "central.log")
    args = [(("--client-id", f"c{n}") if own_ids else ()) for n in range(len(RECEIVERS))]
    procs = [start_central(files[n], logs[n], *args[n]) for n in range(len(RECEIVERS))]
    try:
        def both_in() -> bool:
            text = broker.log()
            return all(f"as {cn} " in text for cn in RECEIVERS) and all(
                "receiver connected" in log.read_text(errors="replace") for log in logs)

        wait_for(both_in, 30, "both receivers connected")
        time.sleep(1.0)  # their SUBSCRIBEs are through
        topic = wire.records_topic(base.mqtt.topic_prefix, base.device.id)
        device_tls = (pki.ca_cert, pki.client_cert, pki.client_key)
        with held(procs[0]), held(procs[1]):  # the kill lands mid-flood (junk_flood.held)
            flood(broker.port, topic, [JUNK] * FLOOD, client_id="kiosk-01", wait_s=60,
                  tls=device_tls)
        wait_for(lambda: central_dead_letters(base) >= KILL_AT, 60,
                 "the receivers setting the flood aside")
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(10)
        killed_at = central_dead_letters(base)
        assert killed_at < FLOOD, "the kill came after the flood: nothing tested"
        procs[1] = start_central(files[1], logs[1], *args[1])
        counted = settled_dead_letters(base, 3.0, 60)
        for n, proc in enumerate(procs):
            assert proc.poll() is None, logs[n].read_text(errors="replace")[-3000:]
        assert counted == FLOOD, (
            f"{counted} dead letters counted for {FLOOD} messages sent "
            f"({FLOOD - counted} never counted; {killed_at} counted at the kill)")
    finally:
        for proc in procs:
            stop(proc)


def test_identical_junk_counted_exactly_with_certificate_client_ids(
        tmp_path: Path, brokers: Brokers) -> None:
    """Found by this review: receivers that take their MQTT client id from their
    certificate (README) all keyed dead letters with the configured central.client_id,
    so one receiver's redelivered packet ids matched the other's identical junk, which
    was never counted. The key now names the certificate's CN and the client id.
    This is the README's production identity: CN as client id, no --client-id."""
    _flood_kill_and_count(tmp_path, brokers, own_ids=False)


def test_identical_junk_counted_exactly_with_distinct_client_ids(
        tmp_path: Path, brokers: Brokers) -> None:
    """The control: the same rig with --client-id c0 / c1 counts exactly, so what the
    first test loses is the key's doing, not the broker's or the kill's."""
    _flood_kill_and_count(tmp_path, brokers, own_ids=True)
