"""The private SANE configuration folder."""

from __future__ import annotations

import pytest

from appliance.scanner.sane_env import airscan_conf, write_sane_config


def test_writes_only_wanted_backends(tmp_path):
    out = write_sane_config(tmp_path / "sane", backends=("test", "airscan"),
                            airscan_url="http://127.0.0.1:8090/eSCL")
    dll = [ln for ln in (out / "dll.conf").read_text().splitlines()
           if ln and not ln.startswith("#")]
    assert dll == ["test", "airscan"]
    test_conf = (out / "test.conf").read_text()
    assert "geometry_max 300.0" in test_conf and "br_y 297.0" in test_conf
    air = (out / "airscan.conf").read_text()
    assert '"BHXH Demo Scanner" = http://127.0.0.1:8090/eSCL, escl' in air
    assert "discovery = disable" in air


def test_airscan_only_by_default(tmp_path):
    out = write_sane_config(tmp_path)
    assert not (out / "test.conf").exists()
    assert "[devices]" in (out / "airscan.conf").read_text()


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_sane_config(tmp_path, backends=("hp3900",))  # not one the appliance uses
    with pytest.raises(ValueError):
        airscan_conf([('bad"name', "http://127.0.0.1:1/eSCL")])
    with pytest.raises(ValueError):
        airscan_conf([("ok", "ftp://x")])


def test_shipped_dll_conf_is_the_appliance_list():
    from appliance.scanner.sane_env import APPLIANCE_BACKENDS, KNOWN_BACKENDS, shipped_dll_conf

    shipped = shipped_dll_conf()
    assert shipped == list(APPLIANCE_BACKENDS)
    assert set(shipped) <= KNOWN_BACKENDS
    assert "escl" not in shipped and "test" not in shipped  # no doubles, no drills
    assert "net" not in shipped  # saned over the network: not a backend we use


def test_usb_backends_get_their_files_without_network_probing(tmp_path):
    from appliance.scanner.sane_env import APPLIANCE_BACKENDS

    system = tmp_path / "etc"
    system.mkdir()
    (system / "epson2.conf").write_text("scsi EPSON\nusb\nnet autodiscovery\n")
    (system / "pixma.conf").write_text("# bjnp://printer\n")
    (system / "fujitsu.conf").write_text("usb 0x04c5 0x1042\n")
    out = write_sane_config(tmp_path / "sane", backends=APPLIANCE_BACKENDS,
                            system_dir=system)
    epson = [ln for ln in (out / "epson2.conf").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert epson == ["scsi EPSON", "usb"]
    assert "networking=no" in (out / "pixma.conf").read_text().splitlines()
    assert "usb 0x04c5 0x1042" in (out / "fujitsu.conf").read_text()
    assert not (out / "avision.conf").exists()  # none on this "system": none copied


def test_appliance_configuration_lists_in_milliseconds(tmp_path):
    """Through libsane in a fresh process, with Debian's real backend files: the
    production set lists in well under a second (Debian's own: ~3.4 s here)."""
    from appliance.scanner.commands import time_listing
    from appliance.scanner.sane_env import APPLIANCE_BACKENDS

    out = write_sane_config(tmp_path / "sane", backends=APPLIANCE_BACKENDS)
    timing = time_listing(out)
    assert timing.list_s < 0.5, timing
