"""Reloading SANE never runs a backend library's initialiser twice.

Why: reload_sane() calls sane.exit(), which unloads the backends, and with them the
libraries only they used; loading airscan again ran gnutls's initialiser again, and
its bindtextdomain() waits for glibc's gettext lock for writing. On 27 Nov a test
worker hung for good inside sane_get_devices() that way (gdb: the lock held by one
reader, no thread in gettext, a SANE reader thread cancelled inside it). The worker
now loads those libraries once, before SANE starts, and keeps them
(device._pin_libraries), so whatever happened to that lock, no later reload waits
for it.

Observed by the dynamic linker itself (LD_DEBUG=files names each initialiser it
calls), in a fresh process driving the real libsane with the airscan and test
backends through the appliance's own list_devices() and reload_sane().
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.scanner import device

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import sys
from pathlib import Path
from appliance.scanner import device, sane_env
sane_env.use_sane_config(sane_env.write_sane_config(Path(sys.argv[1]),
                                                   backends=("test", "airscan")))
for _ in range(3):
    device.list_devices()
    device.reload_sane()
device.list_devices()
"""


def _initialisers(tmp_path: Path, *, pinned: bool) -> list[str]:
    script = SCRIPT if pinned else SCRIPT.replace(
        "from appliance.scanner import device, sane_env",
        "from appliance.scanner import device, sane_env\n"
        "device._pin_libraries = lambda: None  # as before the pin")
    env = {k: v for k, v in os.environ.items() if k != "LD_DEBUG_OUTPUT"}
    env["LD_DEBUG"] = "files"
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "sane")],
                          capture_output=True, text=True, timeout=50, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split("calling init:", 1)[1].strip()
            for line in done.stderr.splitlines() if "calling init:" in line]


def test_each_backend_library_is_initialised_once_however_often_sane_reloads(tmp_path):
    before = _initialisers(tmp_path / "unpinned", pinned=False)
    after = _initialisers(tmp_path / "pinned", pinned=True)
    for soname in device._PINNED_SONAMES:
        # The airscan backend is loaded again at each reload: so was each of these.
        assert sum(soname in path for path in before) == 4, (soname, before)
        assert sum(soname in path for path in after) == 1, (soname, after)
    # The backends themselves still start afresh at each reload (their own state).
    assert sum("libsane-airscan" in path for path in after) == 4, after
