"""Red team 7 on issue 12: the dead-letter key's session identity (commit 1aba2e6) when
the certificate's CN is not the broker's client id.

receiver._session_identity names a receiver's MQTT session by its certificate's CN
whenever mqtt.cert_file is set, and store.session_epoch keeps one counter per such
identity ("session_epoch:cn:<CN>"). That is right only under the shipped broker lines
(use_username_as_clientid: the CN *is* the client id). A broker that checks client
certificates but keeps the client's own id (require_certificate with
use_identity_as_username only, which is what mosquitto does without the provisioning
identity lines) gives two receivers that share one certificate and run with their own
`--client-id c0` / `--client-id c1` two sessions, each numbering packets from 1, and
the receivers one identity and one epoch counter. The first receiver takes epoch 1,
the second epoch 2; when the first comes back after a kill -9 its session is present,
so it reads the counter as it now stands, 2: the second receiver's epoch. Its
redelivered identical junk (read, not committed before the kill, DUP) then carries the
other receiver's keys, and what it had committed under epoch 1 but not PUBACKed comes
back under epoch 2 as new. The count is off either way.

Real processes: mosquitto with TLS client certificates (no use_username_as_clientid),
two `appliance central` sharing one SQLite file, one subscription and one certificate,
with their own client ids; the first killed -9 mid-flood and started again. The
control gives each receiver its own certificate in the same rig: exact.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.sync import wire
from tests.helpers.certs import client_certificate, make_pki
from tests.helpers.junk_flood import flood, held, receiver_connections, settled_dead_letters, stop
from tests.helpers.mosquitto import TlsFiles
from tests.helpers.sync_rig import (
    Brokers,
    central_dead_letters,
    make_config,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(110)

GROUP = "g7-8d2f0c4b61e97a35"
FLOOD = 4_000
KILL_AT = 900
JUNK = b"one poison message, sent again and again {"


class Miscounted(AssertionError):
    """The finding itself (the strict xfail expects this, not a rig timeout)."""


def _shared_or_own_certificate(tmp_path: Path, brokers: Brokers, *, shared: bool) -> None:
    """Two receivers (--client-id c0, c1) on a broker that checks certificates but keeps
    client ids; one certificate for both (shared) or one each. r0 connects first, is
    killed -9 mid-flood and comes back: the count must be exactly what was sent."""
    pki = make_pki(tmp_path / "pki", client_cn="kiosk-01")
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key),
                           anonymous=False)
    base = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert),
                       central={"share_group": GROUP})
    certs = [client_certificate(pki, "central.bhxh")] * 2 if shared else [
        client_certificate(pki, "central.bhxh"), client_certificate(pki, "central-2.bhxh")]
    files, logs = [], []
    for n, (cert, key) in enumerate(certs):
        config = dataclasses.replace(base, mqtt=dataclasses.replace(
            base.mqtt, cert_file=str(cert), key_file=str(key)))
        folder = tmp_path / f"r{n}"
        folder.mkdir()
        files.append(write_config_file(folder, config))
        logs.append(folder / "central.log")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # One after the other, so that r0 holds the lower epoch.
        for n in range(2):
            procs.append(start_central(files[n], logs[n], "--client-id", f"c{n}"))
            wait_for(lambda n=n: receiver_connections(logs[n]) >= 1, 30, f"receiver {n} connected")
        wait_for(lambda: all(f"as c{n} " in broker.log() or f"c{n} " in broker.log()
                             for n in range(2)), 10, "the broker naming both sessions")
        time.sleep(1.0)  # their SUBSCRIBEs are through
        epochs = central_store.read_counters(base.central.database)
        topic = wire.records_topic(base.mqtt.topic_prefix, base.device.id)
        with held(procs[0]), held(procs[1]):  # the kill lands mid-flood (junk_flood.held)
            flood(broker.port, topic, [JUNK] * FLOOD, client_id="kiosk-01", wait_s=60,
                  tls=(pki.ca_cert, pki.client_cert, pki.client_key))
        wait_for(lambda: central_dead_letters(base) >= KILL_AT, 60,
                 "the receivers setting the flood aside")
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        killed_at = central_dead_letters(base)
        assert killed_at < FLOOD, "the kill came after the flood: nothing tested"
        procs[0] = start_central(files[0], logs[0], "--client-id", "c0")
        wait_for(lambda: "session present: True" in logs[0].read_text(errors="replace"),
                 30, "receiver 0 back in its kept session")
        counted = settled_dead_letters(base, 3.0, 60)
        for n, proc in enumerate(procs):
            assert proc.poll() is None, logs[n].read_text(errors="replace")[-3000:]
        if counted != FLOOD:
            raise Miscounted(
                f"{counted} dead letters counted for {FLOOD} messages sent ({killed_at} "
                f"at the kill; epochs before the flood: "
                f"{ {k: v for k, v in epochs.items() if k.startswith('session_epoch')} })")
    finally:
        for proc in procs:
            stop(proc)


def test_shared_certificate_with_own_client_ids_counts_exactly(
        tmp_path: Path, brokers: Brokers) -> None:
    """Found by this review: _session_identity preferred the CN to the client id even
    when the broker's session is the client id, so receivers sharing one certificate
    with their own --client-id got one identity and one session_epoch counter; a
    restarted receiver took the other's epoch and identical junk was miscounted. The
    identity now names both."""
    _shared_or_own_certificate(tmp_path, brokers, shared=True)


def test_own_certificates_with_own_client_ids_count_exactly(
        tmp_path: Path, brokers: Brokers) -> None:
    """The control: the same rig, each receiver with its own certificate: exact."""
    _shared_or_own_certificate(tmp_path, brokers, shared=False)
