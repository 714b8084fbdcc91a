"""The kiosk screen: its unit, its Chromium policy and its blank cursor theme.

What runs here: the policy is applied by a real Chromium (Debian's, driven by
Playwright) in a private mount and network namespace, so navigation to any other
origin is shown blocked by the administrator's policy. What cannot run here: cage
itself (no GPU, no seat, no touchscreen in a test machine); the unit is checked by
systemd-analyze (tests/system/test_system_units.py) and by its directives below.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "provisioning" / "kiosk" / "appliance-kiosk.json"
UNIT = REPO / "systemd" / "appliance-kiosk.service"
ORIGIN = "http://127.0.0.1:8000"
# Keys that make a browser automation impossible by design (the automation protocol is
# the developer tools; Playwright opens its own incognito contexts): the probe leaves
# them out and they are checked as values only.
NOT_AUTOMATABLE = ("DeveloperToolsAvailability", "IncognitoModeAvailability")


def policy() -> dict[str, object]:
    return json.loads(POLICY.read_text(encoding="utf-8"))


def unit_text() -> str:
    return UNIT.read_text(encoding="utf-8")


def exec_start() -> str:
    text = unit_text().replace("\\\n", " ")
    (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    return " ".join(line.split())


def test_policy_locks_the_browser_to_the_appliance():
    p = policy()
    assert p["URLBlocklist"] == ["*"]
    assert p["URLAllowlist"] == [ORIGIN]
    assert p["IncognitoModeAvailability"] == 2  # forced: nothing kept on disk
    assert p["ForceEphemeralProfiles"] is True
    assert p["PrintingEnabled"] is False
    assert p["DeveloperToolsAvailability"] == 2
    assert p["DownloadRestrictions"] == 3
    assert p["AllowFileSelectionDialogs"] is False
    assert p["PasswordManagerEnabled"] is False
    assert p["TranslateEnabled"] is False


def test_unit_opens_the_allowed_origin_in_kiosk_mode():
    line = exec_start()
    assert line.startswith("ExecStart=/usr/bin/cage -d -- /usr/bin/chromium ")
    assert line.endswith(f" {ORIGIN}/kiosk")
    for flag in ("--kiosk", "--incognito", "--disable-pinch",
                 "--overscroll-history-navigation=0", "--noerrdialogs", "--no-first-run",
                 "--user-data-dir=/run/appliance-kiosk/profile"):
        assert f" {flag} " in f"{line} ", flag
    text = unit_text()
    assert "RuntimeDirectory=appliance-kiosk" in text  # tmpfs, removed on stop
    assert "Restart=always" in text
    assert "After=appliance-web.service" in text and "Wants=appliance-web.service" in text
    assert "XCURSOR_THEME=appliance-blank" in text
    assert "IPAddressAllow=localhost" in text and "IPAddressDeny=any" in text


def test_web_unit_is_active_only_once_the_kiosk_page_answers():
    web = (REPO / "systemd" / "appliance-web.service").read_text(encoding="utf-8")
    assert "ExecStartPost=/opt/appliance/.venv/bin/appliance wait-web" in web


def test_blank_cursor_theme_loads_through_libxcursor(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "blank_cursor_theme", REPO / "provisioning" / "kiosk" / "blank-cursor-theme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theme = tmp_path / "appliance-blank"
    assert module.write_theme(theme) >= 50
    name = ctypes.util.find_library("Xcursor")
    if name is None:
        pytest.skip("libXcursor not installed (it comes with chromium)")
    lib = ctypes.CDLL(name)

    class Image(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint), ("size", ctypes.c_uint),
                    ("width", ctypes.c_uint), ("height", ctypes.c_uint),
                    ("xhot", ctypes.c_uint), ("yhot", ctypes.c_uint),
                    ("delay", ctypes.c_uint), ("pixels", ctypes.POINTER(ctypes.c_uint32))]

    lib.XcursorFilenameLoadImage.restype = ctypes.POINTER(Image)
    for cursor in ("left_ptr", "pointer", "text"):
        image = lib.XcursorFilenameLoadImage(str(theme / "cursors" / cursor).encode(), 24)
        assert image, cursor
        assert (image.contents.width, image.contents.height) == (1, 1)
        assert image.contents.pixels[0] >> 24 == 0  # alpha 0: invisible
        lib.XcursorImageDestroy(image)


def _probe_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a private mount namespace over /etc/chromium)"
    if not Path("/usr/lib/chromium/chromium").exists():
        return "Debian chromium not installed"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip missing"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed (test extra)"
    return None


@pytest.mark.timeout(240)
@pytest.mark.skipif(_probe_available() is not None, reason=str(_probe_available()))
def test_chromium_with_the_policy_blocks_every_other_origin(tmp_path):
    automatable = {k: v for k, v in policy().items() if k not in NOT_AUTOMATABLE}
    probe_policy = tmp_path / "appliance-kiosk.json"
    probe_policy.write_text(json.dumps(automatable), encoding="utf-8")
    command = ["unshare", "--mount", "--net", "--propagation", "private", sys.executable,
               str(Path(__file__).with_name("kiosk_policy_probe.py")), str(probe_policy)]
    # Two tries: a loaded machine can make Chromium's first start time out.
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=110)
        lines = [x for x in result.stdout.splitlines() if x.startswith("{")]
        if result.returncode == 0 and lines:
            break
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    found = json.loads(lines[-1])
    assert found["allowed_text"] == "appliance"
    assert "ERR_BLOCKED_BY_ADMINISTRATOR" in found["direct_other_origin"]
    assert found["after_link_has_other_text"] is False
    assert not found["after_link_url"].startswith("http://127.0.0.1:8001")
    for other in ("file_url", "data_url"):
        assert "ERR_BLOCKED_BY_ADMINISTRATOR" in str(found[other]), (other, found[other])


def _cage_available() -> str | None:
    reason = _probe_available()
    if reason and "playwright" not in reason:
        return reason
    for tool in ("/usr/bin/cage", "/usr/bin/Xwayland"):
        if not Path(tool).exists():
            return f"{tool} missing (apt-get install cage xwayland)"
    return None


def _cage_probe(*extra: str) -> dict[str, object]:
    command = ["unshare", "--mount", "--net", "--propagation", "private", sys.executable,
               str(Path(__file__).with_name("kiosk_cage_probe.py")), str(UNIT), str(POLICY),
               *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=150)
    lines = [x for x in result.stdout.splitlines() if x.startswith("{")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    return json.loads(lines[-1])  # type: ignore[no-any-return]


@pytest.mark.timeout(360)
@pytest.mark.skipif(_cage_available() is not None, reason=str(_cage_available()))
def test_the_units_own_command_under_cage_stays_on_the_appliance_and_ends_with_the_browser():
    """The unit's ExecStart= as it is (cage, Chromium with every kiosk flag, the full
    policy, incognito and devtools locks included), as an unprivileged user with
    Chromium's sandbox on, on wlroots' headless backend: the kiosk page loads, its
    attempt to leave for another origin never reaches that origin, and killing the
    browser ends cage, the process systemd then restarts (Restart=always).
    The control run without the policy shows the page does leave when not locked."""
    locked = _cage_probe()
    assert locked["argv0"] == "/usr/bin/cage"
    assert "/kiosk" in locked["appliance_requests"]  # type: ignore[operator]
    assert "/leaving" in locked["appliance_requests"]  # it did try to leave
    assert locked["elsewhere_requests"] == []
    assert locked["chromium_processes"] > 0  # type: ignore[operator]
    assert locked["cage_exit_after_browser_killed"] is not None
    control = _cage_probe("--no-policy")
    assert "/escaped" in control["elsewhere_requests"]  # type: ignore[operator]
    # unlocked, the escape comes at once: the locked run watched long enough to see it
    assert control["escape_seconds"] < control["leave_grace_seconds"] / 3, control  # type: ignore[operator]
