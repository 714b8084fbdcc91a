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

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.system import config as config_mod
from tests.helpers.full_disk_sync import full_disk_sync
from tests.helpers.sync_rig import (
    Brokers,
    Service,
    all_delivered,
    assert_exactly_once,
    device_state,
    enqueue,
    wait_for,
)

StartService = Callable[[Callable[..., None], config_mod.Config], Service]
pytestmark = pytest.mark.timeout(60)

RETRY_SECONDS = 1.0


def test_the_screens_say_connected_after_a_reconnect_on_a_full_disk(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """Found by the fourth review: show() remembered the new sync.state before writing
    it, so a write refused for a full disk at reconnect left the screens saying
    'disconnected' while records flowed. It is now remembered only once written, and
    written again on a later loop (publisher.show_unwritten)."""
    broker = brokers.start()
    with full_disk_sync(tmp_path, broker.port, RETRY_SECONDS, records=1) as rig:
        config = rig.config
        [first] = rig.records
        services(run_receiver, config)
        sync = rig.procs.start("sync", "sync")
        wait_for(lambda: all_delivered(config, [first]), 30, "the first record")
        assert device_state(config, "sync.state") == "connected"

        broker.kill()
        wait_for(lambda: device_state(config, "sync.state") == "disconnected", 30,
                 "the screens saying the link is down")
        rig.fill()
        seen = rig.log().count("connected to")
        full = rig.log().count("data disk full")
        brokers.start(port=broker.port)
        wait_for(lambda: rig.log().count("connected to") > seen
                 and rig.log().count("data disk full") > full, 30,
                 "sync reconnecting on the full disk")
        rig.alive(sync)
        rig.make_room()

        [after] = enqueue(config, 1)
        wait_for(lambda: all_delivered(config, [after]), 30, "a record signed afterwards")
        assert_exactly_once(config, [first, after])
        rig.alive(sync)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and \
                device_state(config, "sync.state") != "connected":
            time.sleep(0.2)
        assert device_state(config, "sync.state") == "connected", (
            f"sync.state {device_state(config, 'sync.state')!r}, last error "
            f"{device_state(config, 'sync.last_error')!r}, while records are delivered")
