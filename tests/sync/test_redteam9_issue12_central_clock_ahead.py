"""Red team 9 (issue 12): a central office whose clock runs ahead, through real processes.

outbox.delivered_at is now max(device clock, the central's signed received_at), so
that a device that booted with a stale fake-hwclock does not purge its copies a minute
after delivery. The other side of that max: the central's clock is believed without
any bound (wire accepts received_at up to 1e11, the year 5138). A receiver host whose
clock was set two years ahead (a mistyped `date`, a bad NTP source, a VM restored with
a skewed clock), for as little as one batch, stamps every device's deliveries two years
ahead, and the device keeps that stamp for good:

- the officers' and technician's screens show "last delivery" from
  MAX(outbox.delivered_at): a time two years ahead, so `age(now - last)` is clamped to
  "0 seconds" -- a device whose sync then stops for days still shows a delivery "just
  now" for two years (strict xfail);
- the retention purge counts from that stamp: a signed dossier past its 30 days of
  retention is still not due 31 days later (nor two years later), so the citizen's
  page images outlive the office's retention rule by the central's clock error
  (strict xfail).

The central here is a real `appliance central` process whose time.time() runs 730
days ahead; the device is the real sync service; nothing but the central's clock is
wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import status
from appliance.records import erasure
from appliance.store.db import connect
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from tests.helpers.sync_rig import (
    REPO,
    all_delivered,
    enqueue,
    make_config,
    wait_for,
    write_config_file,
)

pytestmark = pytest.mark.timeout(90)

DAY = 86400.0
AHEAD_S = 730 * DAY
RETENTION_DAYS = 30

# `appliance central`'s own main, with the process's clock moved ahead first.
_AHEAD = (
    "import sys, time; real = time.time; "
    f"time.time = lambda: real() + {AHEAD_S!r}; "
    "from appliance.central.commands import main_central; sys.exit(main_central())"
)


def _delivered_through_a_central_ahead(tmp_path: Path, port: int,
                                       services) -> tuple[config_mod.Config, list]:
    config = config_mod.with_overrides(
        make_config(tmp_path, port), retention={"delivered_days": RETENTION_DAYS})
    config_file = write_config_file(tmp_path, config)
    log = tmp_path / "central.log"
    with open(log, "ab") as out:
        central = subprocess.Popen(
            [sys.executable, "-c", _AHEAD, "--config", str(config_file)], cwd=REPO,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})
    try:
        records = enqueue(config, 2)
        services(run_publisher, config)
        wait_for(lambda: all_delivered(config, records) or central.poll() is not None, 40,
                 "delivery through the central whose clock is ahead")
        assert central.poll() is None, log.read_text(errors="replace")[-2000:]
        assert all_delivered(config, records)
    finally:
        central.terminate()
        try:
            central.wait(15)
        except subprocess.TimeoutExpired:
            central.kill()
            central.wait(5)
    return config, records


def test_last_delivery_on_the_screens_is_never_in_the_future(tmp_path, broker, services):
    config, _records = _delivered_through_a_central_ahead(tmp_path, broker.port, services)
    conn = connect(config.paths.database)
    try:
        snap = status.snapshot(conn, config)
        stamps = [float(r[0]) for r in conn.execute(
            "SELECT delivered_at FROM outbox WHERE state='delivered'")]
    finally:
        conn.close()
    now = time.time()
    last = snap["last_delivery_at"]
    assert last is not None
    assert last <= now + 60, (
        f"last delivery {last - now:.0f} s in the future; three days without any "
        f"delivery the screen would still compute an age of {now + 3 * DAY - last:.0f} s; "
        f"outbox stamps ahead by {[round(s - now) for s in stamps]} s")


def test_retention_is_not_stretched_by_the_centrals_clock(tmp_path, broker, services):
    config, records = _delivered_through_a_central_ahead(tmp_path, broker.port, services)
    conn = connect(config.paths.database)
    try:
        dossier_ids = {int(r[0]) for r in conn.execute(
            "SELECT dossier_id FROM records WHERE record_id IN (?, ?)",
            tuple(r.record_id for r in records))}
        assert len(dossier_ids) == 2
        now = time.time()
        # Not due the day after delivery: the retention holds on the safe side.
        assert not dossier_ids & set(erasure.due_for_purge(conn, RETENTION_DAYS, now + DAY))
        due_later = set(erasure.due_for_purge(conn, RETENTION_DAYS,
                                              now + (RETENTION_DAYS + 1) * DAY))
        due_much_later = set(erasure.due_for_purge(conn, RETENTION_DAYS, now + 700 * DAY))
    finally:
        conn.close()
    assert dossier_ids <= due_later, (
        f"31 days after delivery {len(dossier_ids - due_later)} of 2 dossiers are not due; "
        f"700 days after, {len(dossier_ids - due_much_later)} of 2")
