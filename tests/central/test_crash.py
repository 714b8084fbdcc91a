"""kill -9 of `appliance central` (a real process) while it commits in groups.

Group commit moves the PUBACK and the ack after one COMMIT for many messages; a kill
between any two of those steps must still end with every record stored exactly
once and none delivered that the receiver lacks.
"""

from __future__ import annotations

import functools
import os
import signal

import pytest

from appliance.central import store as central_store
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    enqueue,
    make_config,
    probe_receiver,
    start_central,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(150)


def stored(config: config_mod.Config) -> int:
    try:
        return len(central_store.list_records(config.central.database))
    except Exception:  # noqa: BLE001 - the file may be mid-creation
        return 0


def test_receiver_kill9_during_group_commits_loses_and_duplicates_nothing(
        tmp_path, broker, services):
    config = make_config(tmp_path, broker.port, ack_timeout_seconds=3.0)
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    attacker = Attacker(broker.port)
    central = start_central(config_file, log)
    try:
        probe_receiver(attacker, config)
        recs = enqueue(config, 120, pdf_sizes=(100_000,))
        # A small window keeps the drain long enough to kill the receiver twice in it.
        publisher = services(functools.partial(run_publisher, window=2), config)
        for target in (10, 40):
            wait_for(lambda n=target: stored(config) >= n, 60, f"{target} records stored")
            os.kill(central.pid, signal.SIGKILL)
            central.wait(10)
            assert stored(config) < len(recs), "killed too late to test anything"
            central = start_central(config_file, log)
        wait_for(lambda: all_delivered(config, recs), 90, "every record after two kills")
        assert central.poll() is None, log.read_text()
        assert publisher.running()
        assert_exactly_once(config, recs)
        assert_no_false_delivery(config)
        assert stored(config) == len(recs)
    finally:
        if central.poll() is None:
            os.kill(central.pid, signal.SIGTERM)
            central.wait(15)
        attacker.close()
