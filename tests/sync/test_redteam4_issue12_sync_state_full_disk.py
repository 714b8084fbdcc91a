"""Red team 4 on issue 12, item 5 ("officers see backlog and free disk"): what the screens
say about the link after sync reconnected on a full disk.

The officer's and technician's screens read sync.state from device_state, which
publisher._Publisher.show() writes only when it changes. show() remembers the new
state before its write, so when the write is refused for a full disk (connect() ->
show("connected") right after a reconnect) it believes the screens already say
"connected". Once space is back nothing writes it again until the state changes: the
screens keep saying "disconnected", with the old error, while records are delivered.

Here the broker dies (sync writes "disconnected", there is room), the disk fills to
the last byte, the broker comes back (sync reconnects on the full disk), space comes
back, and a record signed afterwards is delivered: the state must say "connected".
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.store import space
from appliance.store.db import connect
from appliance.system import config as config_mod
from tests.helpers.processes import Processes
from tests.helpers.small_disk import fill, free_bytes, mounted_tmpfs
from tests.helpers.sync_rig import (
    Brokers,
    Service,
    all_delivered,
    assert_exactly_once,
    device_state,
    enqueue,
    make_config,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(60)

RETRY_SECONDS = 1.0


def _log(procs: Processes) -> str:
    return (procs.log_dir / "sync.log").read_text(errors="replace")


def _alive(proc: subprocess.Popen[bytes], procs: Processes) -> None:
    assert proc.poll() is None, f"appliance sync exited ({proc.returncode})\n{_log(procs)}"


def test_the_screens_say_connected_after_a_reconnect_on_a_full_disk(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """Found by the fourth review: show() remembered the new sync.state before writing
    it, so a write refused for a full disk at reconnect left the screens saying
    'disconnected' while records flowed. It is now remembered only once written, and
    written again on a later loop (publisher.show_unwritten)."""
    broker = brokers.start()
    with mounted_tmpfs(tmp_path / "data", "8m") as disk:
        config = config_mod.with_overrides(make_config(tmp_path, broker.port),
                                           paths={"data_dir": str(disk)})
        [first] = enqueue(config, 1)
        held = connect(config.paths.database)  # the web, holding the database (its WAL) open
        procs = Processes.for_config(tmp_path, config)
        procs.env[space.RETRY_ENV] = str(RETRY_SECONDS)
        filler: Path | None = None
        try:
            services(run_receiver, config)
            sync = procs.start("sync", "sync")
            wait_for(lambda: all_delivered(config, [first]), 30, "the first record")
            assert device_state(config, "sync.state") == "connected"

            broker.kill()
            wait_for(lambda: device_state(config, "sync.state") == "disconnected", 30,
                     "the screens saying the link is down")
            filler = fill(disk)
            assert free_bytes(disk) == 0
            seen = _log(procs).count("connected to")
            full = _log(procs).count("data disk full")
            brokers.start(port=broker.port)
            wait_for(lambda: _log(procs).count("connected to") > seen
                     and _log(procs).count("data disk full") > full, 30,
                     "sync reconnecting on the full disk")
            _alive(sync, procs)
            filler.unlink()
            filler = None

            [after] = enqueue(config, 1)
            wait_for(lambda: all_delivered(config, [after]), 30, "a record signed afterwards")
            assert_exactly_once(config, [first, after])
            _alive(sync, procs)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and \
                    device_state(config, "sync.state") != "connected":
                time.sleep(0.2)
            assert device_state(config, "sync.state") == "connected", (
                f"sync.state {device_state(config, 'sync.state')!r}, last error "
                f"{device_state(config, 'sync.last_error')!r}, while records are delivered")
        except BaseException:
            print(procs.logs())
            raise
        finally:
            procs.stop_all()
            held.close()
            if filler is not None:
                filler.unlink()
