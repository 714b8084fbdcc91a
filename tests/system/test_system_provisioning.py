"""The install script: what a device install writes, checked without installing.

The end-to-end run (a Debian 12 tree booted under systemd-nspawn, installed with the
script, units started) is `provisioning/prove-under-systemd.sh`, run by
test_system_boot.py under the `benchmark` mark (minutes, root, the Debian mirror).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "provisioning"
SCRIPTS = ["install.sh", "system-install.sh", "prove-under-systemd.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(PROVISIONING / script)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_every_unit_file_is_installed():
    text = (PROVISIONING / "system-install.sh").read_text(encoding="utf-8")
    (block,) = re.findall(r"local units=\((.*?)\)", text, re.S)
    installed = set(block.split())
    shipped = {p.name for p in (REPO / "systemd").iterdir() if p.is_file()}
    assert installed == shipped


def test_quick_start_commands_are_unchanged():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\nbash provisioning/install.sh run\n" in readme
    assert "\nbash provisioning/install.sh test\n" in readme


def test_kiosk_packages_are_in_the_install_list():
    wanted = (PROVISIONING / "apt-kiosk.txt").read_text(encoding="utf-8").split()
    assert {"cage", "chromium", "libpam-systemd"} <= set(wanted)


def test_install_never_overwrites_configuration_or_key():
    text = (PROVISIONING / "system-install.sh").read_text(encoding="utf-8")
    assert '[ ! -e /etc/appliance/appliance.toml ]' in text
    install = (PROVISIONING / "install.sh").read_text(encoding="utf-8")
    assert "appliance.system.crypto init --key-file /etc/appliance/appliance.key" in install


def test_udev_rule_gives_scanners_to_the_scanner_group():
    rule = (PROVISIONING / "udev" / "70-appliance-scanner.rules").read_text(encoding="utf-8")
    assert 'GROUP="scanner"' in rule and 'ENV{libsane_matched}=="yes"' in rule
