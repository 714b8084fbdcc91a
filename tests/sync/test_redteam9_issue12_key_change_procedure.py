"""Red team 9 (issue 12): the README's key change steps, followed literally with real
processes (mosquitto, `appliance central` processes, the sync service), keys by OpenSSL.

- Two receivers sharing one subscription on one PostgreSQL database, switched to the
  new key one by one while the device keeps scanning: every record delivered exactly
  once in each phase, no ack counted forged, the first switched receiver warns that
  its key is new to the database, and `appliance central --report --json` on a
  read-only session (as on a hot standby) lists both keys, the new one last used
  (holds).
- After the change (the devices' files hold the new key only, step 4), a receiver is
  restarted with the old key (a configuration rolled back, a host restored from a
  backup). Every device counts its acks as forged and its records wait; the receiver
  logs only "signing acks with key <old id>", with no warning, because its key is not
  new to the database (note_key warns only for `new and others`). The database knows
  the key was replaced (signing_keys: the new key first used after the old one's
  first use) and nothing says so (strict xfail).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers import postgres as pg_helpers
from tests.helpers.central_keys import ed25519 as openssl_key
from tests.helpers.junk_flood import stop
from tests.helpers.redteam8_rig import Receivers
from tests.helpers.sync_rig import (
    REPO,
    all_delivered,
    assert_exactly_once_everywhere,
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
    write_config_file,
)

pg_server = pg_helpers.pg_server  # fixture
pytestmark = pytest.mark.timeout(150)

GROUP = "rt9-keys-3f1c0a7e9b25d684"


def receivers(folder: Path, config: config_mod.Config) -> Receivers:
    folder.mkdir(parents=True, exist_ok=True)
    return Receivers(folder, config)


def signing(config: config_mod.Config, key: Path, believed: Path) -> config_mod.Config:
    return config_mod.with_overrides(config, mqtt={"central_public_key": str(believed)},
                                     central={"signing_key": str(key)})


def report_json(folder: Path, config: config_mod.Config) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_config_file(folder, config)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from appliance.central.commands import "
         "main_central; sys.exit(main_central())", "--config", str(path), "--report",
         "--json"], cwd=REPO, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return json.loads(done.stdout)


def test_two_receivers_on_postgresql_switch_keys_one_by_one(tmp_path, broker, services,
                                                            pg_server):
    old_key, old_pub, old_id = openssl_key(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_key(tmp_path / "keys", "new")
    # Step 2: the new public key appended to the devices' file, as `cat` appends it.
    both = tmp_path / "keys" / "central.pem"
    both.write_bytes(old_pub.read_bytes() + new_pub.read_bytes())
    dsn = pg_server.create_database()
    base = make_config(tmp_path, broker.port, signed=False,
                       central={"postgres_dsn": dsn, "share_group": GROUP})
    old, new = signing(base, old_key, both), signing(base, new_key, both)
    on_old, on_new = receivers(tmp_path / "old", old), receivers(tmp_path / "new", new)
    try:
        on_old.start(1)
        on_old.start(2)
        services(run_publisher, old)
        everything = []
        for phase, step in enumerate(("both old", "1 switched", "both switched")):
            if phase:   # step 3: receiver `phase` restarted with the new key
                stop(on_old.procs[phase])
                on_new.start(phase)
            records = enqueue(old, 4)
            wait_for(lambda r=records: all_delivered(old, r), 40, f"delivery, {step}")
            everything += records
        assert all(p.returncode == 0 for p in on_old.procs.values()), on_old.exited()
        assert not on_new.exited(), on_new.exited()
        assert_exactly_once_everywhere(old, everything)
        assert device_dead_letters(old).get("forged", 0) == 0
        said = on_new.log_text(1)
        assert f"signing acks with key {new_id}" in said
        assert f"key {new_id} is new to this database, whose acks were signed by {old_id}" \
            in said
        assert "is new to this database" not in on_new.log_text(2)

        # --report as on a hot standby: a session that cannot write.
        standby = config_mod.with_overrides(new, central={
            "postgres_dsn": f"{dsn}&options=-c%20default_transaction_read_only%3Don"})
        with psycopg.connect(standby.central.postgres_dsn) as session:
            assert session.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        listed = report_json(tmp_path / "report", standby)["signing_keys"]
        assert [k["key_id"] for k in listed] == [new_id, old_id]
    finally:
        on_old.stop_all()
        on_new.stop_all()

    # The same database as receivers of the previous version leave it (schema 4, no
    # signing_keys): --report on the read-only session still answers, with no keys.
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute("DROP TABLE signing_keys")
        session.execute("DELETE FROM schema_version WHERE version = 5")
    before = report_json(tmp_path / "report-old", standby)
    assert before["signing_keys"] == [] and before["counters"]


def test_receiver_back_on_the_retired_key_says_so(tmp_path, broker, services):
    old_key, old_pub, old_id = openssl_key(tmp_path / "keys", "old")
    new_key, new_pub, new_id = openssl_key(tmp_path / "keys", "new")
    both = tmp_path / "keys" / "central.pem"
    both.write_bytes(old_pub.read_bytes() + new_pub.read_bytes())
    base = make_config(tmp_path, broker.port, signed=False, ack_timeout_seconds=1.0)
    old, new = signing(base, old_key, both), signing(base, new_key, both)

    first = receivers(tmp_path / "a", old)
    first.start(1)
    device = services(run_publisher, old)
    records = enqueue(old, 1)
    wait_for(lambda: all_delivered(old, records), 30, "delivery under the old key")
    first.stop_all()
    second = receivers(tmp_path / "b", new)
    second.start(1)
    records = enqueue(old, 1)
    wait_for(lambda: all_delivered(old, records), 30, "delivery under the new key")
    second.stop_all()
    # Step 4: the old key is taken off the devices.
    device.stop()
    services(run_publisher, signing(base, new_key, new_pub))

    back = receivers(tmp_path / "c", old)   # the rolled-back configuration
    try:
        back.start(1)
        waiting = enqueue(old, 1)
        wait_for(lambda: device_dead_letters(old).get("forged", 0) >= 1, 30,
                 "the device refusing the old key's acks")
        assert outbox_state(old, waiting[0].record_id).name != "DELIVERED"
        said = back.log_text(1)
        assert f"signing acks with key {old_id}" in said
        warnings = [line for line in said.splitlines()
                    if "WARNING" in line and old_id in line and new_id in line]
        assert warnings, f"no warning naming {old_id} and {new_id}:\n{said[-1500:]}"
    finally:
        back.stop_all()
