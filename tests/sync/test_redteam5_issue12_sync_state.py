"""Red team 5 on issue 12, item 5 ("officers see backlog"): what the screens say about
the link after it went down *and* came back while the device's disk was full.

Commit 48c2ee3 made publisher._Publisher.show() remember a state only once written,
keep a refused one in `unshown`, and write it on a later loop (show_unwritten). But
show() still returns early when the new state equals the last one *written*, and that
early return leaves `unshown` alone. So:

1. connected, written (there is room);
2. the disk fills; the link goes down: show("disconnected", why) is refused for the
   full disk, unshown = ("disconnected", why), shown stays ("connected", "");
3. the link comes back while the disk is still full: connect() -> show("connected")
   equals `shown` and returns, unshown is still "disconnected";
4. space comes back: show_unwritten() writes "disconnected", while sync is connected
   and delivers. Nothing writes "connected" again until the state changes.

The red team 4 test behind that commit wrote "disconnected" while there was room, so
its reconnect was a real change; this one loses the link on the full disk.

Real processes: a real mosquitto killed and started again on its port, `appliance
sync` as a process on a real tmpfs filled to the last byte, the receiver in a thread.
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
pytestmark = pytest.mark.timeout(75)

RETRY_SECONDS = 1.0


def test_the_screens_say_connected_after_link_lost_and_back_on_a_full_disk(
        tmp_path: Path, brokers: Brokers, services: StartService) -> None:
    """Found by the fifth review: show() returned early when the state equalled the
    last one written, leaving `unshown` set, so a 'disconnected' refused on a full disk
    was written after the reconnect and stayed while records were delivered. The early
    return now needs nothing left unwritten."""
    broker = brokers.start()
    with full_disk_sync(tmp_path, broker.port, RETRY_SECONDS, records=1) as rig:
        config = rig.config
        [first] = rig.records
        services(run_receiver, config)
        sync = rig.procs.start("sync", "sync")
        wait_for(lambda: all_delivered(config, [first]), 30, "the first record")
        assert device_state(config, "sync.state") == "connected"

        rig.fill()
        full = rig.log().count("data disk full")
        seen = rig.log().count("connected to")
        broker.kill()
        wait_for(lambda: "lost" in rig.log()
                 and rig.log().count("data disk full") > full, 30,
                 "sync noticing the lost link on the full disk")
        # The link was lost with no room to say so: still the old word on screen.
        assert device_state(config, "sync.state") == "connected"
        brokers.start(port=broker.port)
        wait_for(lambda: rig.log().count("connected to") > seen, 30,
                 "sync reconnecting on the full disk")
        time.sleep(2 * RETRY_SECONDS)
        rig.alive(sync)
        rig.make_room()

        [after] = enqueue(config, 1)
        wait_for(lambda: all_delivered(config, [after]), 30, "a record signed afterwards")
        assert_exactly_once(config, [first, after])
        rig.alive(sync)
        time.sleep(3 * RETRY_SECONDS)  # every later loop has run show_unwritten
        state = device_state(config, "sync.state")
        assert state == "connected", (
            f"sync.state {state!r}, last error "
            f"{device_state(config, 'sync.last_error')!r}, while records are delivered")
