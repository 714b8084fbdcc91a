"""Red team: `appliance worker` and `appliance sync` (real processes) started on a data
disk already full to the last byte, as systemd restarts them after a crash or a
reboot, with the web holding the database open.

Why: the store-and-forward issue promises that on a full disk "sync and the worker
keep running and retry"; tests/worker/test_disk_full.py checks that for processes
that were running when the disk filled, and tests/web/test_web_disk_full.py checks
the web's own start on a full disk. A service that dies at start on a full disk is,
under systemd (Restart=on-failure, 5 starts in 10 minutes), a crash loop that ends
with the unit failed: nothing is sent even once space is back. Once space is freed,
the records queued before must still reach the central office, exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.store import space
from appliance.store.db import connect
from appliance.system import config as config_mod
from tests.helpers.mosquitto import MosquittoProcess
from tests.helpers.processes import Processes
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import (  # noqa: F401 - fixtures
    Service,
    all_delivered,
    assert_exactly_once,
    broker,
    brokers,
    enqueue,
    make_config,
    services,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(150)


# The services try a full disk again every RETRY_SECONDS (5 s in service); here 1 s,
# so that staying up through several retries takes seconds, not half a minute.
RETRY_SECONDS = 1.0


def _full_disk_rig(tmp_path: Path, disk: Path, port: int) -> tuple[config_mod.Config, Processes]:
    config = config_mod.with_overrides(
        make_config(tmp_path, port), paths={"data_dir": str(disk)},
        ocr={"enabled": False}, health={"scan_min_free_mb": 1})
    procs = Processes.for_config(tmp_path, config)
    procs.env[space.RETRY_ENV] = str(RETRY_SECONDS)
    return config, procs


def _stays_up(procs: Processes, name: str, seconds: float, *, until_log: str = "") -> None:
    """`name` keeps running for `seconds`, counted from when its log says `until_log`
    (waited for as long as the child lives, up to a minute)."""
    proc = procs.children[name]
    log = procs.log_dir / f"{name}.log"
    deadline = time.monotonic() + 60
    end = None if until_log else time.monotonic() + seconds
    while end is None or time.monotonic() < end:
        assert proc.poll() is None, (
            f"appliance {name} exited ({proc.returncode}) when started on a full disk: "
            f"under systemd, a crash loop and then a failed unit\n{procs.logs()}")
        if end is None:
            if until_log in log.read_text(encoding="utf-8", errors="replace"):
                end = time.monotonic() + seconds
            else:
                assert time.monotonic() < deadline, f"{name} never said {until_log!r}"
        time.sleep(0.25)


def test_sync_started_on_a_full_disk_waits_and_then_delivers_exactly_once(
        tmp_path: Path, broker: MosquittoProcess,  # noqa: F811 - fixture
        services: StartService) -> None:  # noqa: F811 - fixture
    with mounted_tmpfs(tmp_path / "data", "8m") as disk:
        config, procs = _full_disk_rig(tmp_path, disk, broker.port)
        records = enqueue(config, 3)  # signed and queued before the disk filled
        held = connect(config.paths.database)  # the web, holding the database open
        filler = fill(disk)
        try:
            assert free_bytes(disk) == 0
            procs.start("sync", "sync")
            # up, waiting on the disk, and still up after a few more tries
            _stays_up(procs, "sync", 3 * RETRY_SECONDS, until_log="data disk full")
            receiver = services(run_receiver, config)  # the central disk has room
            filler.unlink()
            wait_for(lambda: all_delivered(config, records), 90,
                     "the records queued before the disk filled")
            assert_exactly_once(config, records)
            _stays_up(procs, "sync", 1)
            assert receiver.running()
        except BaseException:
            print(procs.logs())
            raise
        finally:
            procs.stop_all()
            held.close()
            filler.unlink(missing_ok=True)


def test_worker_started_on_a_full_disk_waits_instead_of_exiting(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "data", "8m") as disk:
        config, procs = _full_disk_rig(tmp_path, disk, 1)  # the worker needs no broker
        held = connect(config.paths.database)  # the web, holding the database open
        filler = fill(disk)
        try:
            assert free_bytes(disk) == 0
            procs.start("worker", "worker")
            # up, waiting on the disk, and still up after a few more tries
            _stays_up(procs, "worker", 3 * RETRY_SECONDS, until_log="data disk full")
            filler.unlink()
            _stays_up(procs, "worker", 1, until_log="worker ready")  # its start finished
        finally:
            procs.stop_all()
            held.close()
            filler.unlink(missing_ok=True)
