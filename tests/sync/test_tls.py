"""Delivery over mutual TLS, with a CA and certificates made by openssl in tmp_path."""

from __future__ import annotations

import pytest

from appliance.central.receiver import list_records, run_receiver
from appliance.store.db import connect
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from tests.helpers.certs import make_pki
from tests.helpers.device_records import add_record
from tests.helpers.mosquitto import TlsFiles
from tests.helpers.sync_rig import device_state, make_config, outbox_state, wait_for

pytestmark = pytest.mark.timeout(60)


def test_record_delivered_over_mutual_tls(tmp_path, brokers, services):
    pki = make_pki(tmp_path / "pki")
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key))
    config = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert),
                         cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    conn = connect(config.paths.database)
    rec = add_record(conn, config.paths.files, pdf_sizes=(12_000,))
    conn.close()
    services(run_receiver, config)
    services(run_publisher, config)
    wait_for(lambda: outbox_state(config, rec.record_id) is OutboxState.DELIVERED, 20, "ack")
    assert [r["sha256"] for r in list_records(config.central.database)] == [rec.sha256]


def test_client_without_certificate_is_refused_and_says_why(tmp_path, brokers, services):
    pki = make_pki(tmp_path / "pki")
    broker = brokers.start(tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key))
    config = make_config(tmp_path, broker.port, tls=True, ca_file=str(pki.ca_cert))
    services(run_publisher, config)
    wait_for(lambda: device_state(config, "sync.state") == "disconnected", 10, "refusal")
    error = device_state(config, "sync.last_error")
    print(error)
    assert error and "127.0.0.1" in error
