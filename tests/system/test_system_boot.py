"""The appliance under a real systemd as PID 1 (systemd-nspawn), installed by its script.

Minutes long, needs root, debootstrap, systemd-container and the Debian mirror and
PyPI: marked `benchmark`, so only `pytest -m benchmark tests/system/test_system_boot.py`
runs it. $APPLIANCE_PROOF_ROOT names the Debian tree to reuse (made when absent).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "provisioning" / "prove-under-systemd.sh"

pytestmark = [
    pytest.mark.benchmark,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("systemd-nspawn") is None
                       or shutil.which("debootstrap") is None,
                       reason="apt-get install systemd-container debootstrap"),
]


def test_boots_installs_serves_and_restarts_under_systemd():
    root = Path(os.environ.get("APPLIANCE_PROOF_ROOT", "/var/tmp/appliance-proof/bookworm"))
    # The whole run is kept beside the tree (ROOT.prove.log) to be read afterwards.
    log = Path(f"{root}.prove.log")
    with log.open("w", encoding="utf-8") as out:
        result = subprocess.run(["bash", str(SCRIPT), str(root)], stdout=out,
                                stderr=subprocess.STDOUT, text=True, timeout=3500)
    assert result.returncode == 0, log.read_text(encoding="utf-8")[-8000:]
    found = json.loads(Path(f"{root}.proof.json").read_text(encoding="utf-8"))
    assert found["pid1"] == "systemd"
    for unit in ("web", "worker", "sync"):
        assert found[unit] == "active", found
    assert found["kiosk_http"] == "200"
    assert found["web_type"] == "notify"
    # active (running) as Type=notify: READY=1 came, from the health probe of the
    # served socket (its STATUS=), with the unit's watchdog armed
    assert found["web_substate"] == "running", found
    assert found["web_status_text"].startswith("serving http://"), found
    assert found["web_watchdog_usec"] == "1min", found
    assert found["worker_watchdog_usec"] not in ("", "0", "infinity")
    assert int(found["worker_restarts_after_kill"]) >= 1
    assert found["worker_after_kill"] == "active"
    assert int(found["timers"]) >= 2
    assert found["doctor_unit_result"] == "success"
    assert found["purge_unit_result"] == "success"
    # upgrade with records waiting
    # (a reused tree keeps the records of earlier runs: at least the two made now)
    assert int(found["undelivered_before_upgrade"]) >= 2
    assert found["undelivered_after_upgrade"] == found["undelivered_before_upgrade"]
    assert found["release_after_upgrade"] != found["release_before_upgrade"]
    assert found["release_after_upgrade"].endswith(".post1")
    assert int(found["backups_after_upgrade"]) >= 1
    assert found["web_after_upgrade"] == "active" and found["kiosk_http_after_upgrade"] == "200"
    # the watchdog, fed from the sync loop, restarts a hung service
    assert int(found["sync_restarts_after_hang"]) >= 1
    assert int(found["sync_watchdog_logged"]) >= 1
    # the web watchdog (lowered to 20 s by a drop-in for the test): a stopped gunicorn
    # worker (the arbiter runs, the probe fails) and a stopped arbiter each end in a
    # restart by systemd's watchdog, serving again afterwards
    assert found["web_test_watchdog_usec"] == "20s", found
    for hung in ("worker", "arbiter"):
        assert int(found[f"web_restarts_after_{hung}_hang"]) >= 1, (hung, found)
        assert int(found[f"web_watchdog_logged_{hung}"]) >= 1, (hung, found)
        assert found[f"web_after_{hung}_hang"] == "running", (hung, found)
        assert found[f"web_pid_changed_after_{hung}_hang"] == "yes", (hung, found)
    assert found["kiosk_http_after_web_hangs"] == "200"
    assert found["web_final_watchdog_usec"] == "1min" and found["web_final"] == "active"
    assert found["doctor_exit"] == "0"
