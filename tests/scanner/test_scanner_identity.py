"""ScannerIdentity: what the configuration stores instead of a volatile SANE name.

Device lists here are plain values in the shape SANE returns them (name, vendor,
model, type): matching is pure logic over them; the tests that open devices by
identity through libsane are in test_scanner_airscan.py and test_scanner_session.py.
"""

from __future__ import annotations

import pytest

from appliance.scanner.device import DeviceInfo
from appliance.scanner.identity import ScannerIdentity, serial_from_name, stable_name


def _dev(name: str, vendor: str = "FUJITSU", model: str = "fi-7160") -> DeviceInfo:
    return DeviceInfo(name, vendor, model, "sheetfed scanner", serial_from_name(name))


def test_round_trip_through_the_stored_string():
    ident = ScannerIdentity("Hewlett|Packard", "Office Jet & Pro=8600", "CN12 34",
                            "hpaio", "hpaio:/usb/x")
    text = ident.to_string()
    assert text.startswith("scanner:") and "\n" not in text and "|" not in text
    assert ScannerIdentity.from_string(text) == ident
    assert str(ident) == text
    assert ScannerIdentity.looks_like(text)
    assert not ScannerIdentity.looks_like("airscan:e0:Office")


def test_legacy_identity_string_is_read():
    ident = ScannerIdentity.from_string("fujitsu|FUJITSU|fi-7160|fujitsu:libusb")
    assert (ident.vendor, ident.model, ident.backend) == ("FUJITSU", "fi-7160", "fujitsu")


@pytest.mark.parametrize("bad", ["", "scanner:vendor=x", "scanner:model=a&colour=red",
                                 "a|b", "test:0"])
def test_bad_strings_are_refused(bad):
    with pytest.raises(ValueError):
        ScannerIdentity.from_string(bad)


def test_serials_written_into_device_names():
    assert serial_from_name("hpaio:/usb/Officejet_Pro_8600?serial=CN1234567") == "CN1234567"
    assert serial_from_name("pixma:04A9176D_4B7C1F") == "4B7C1F"
    assert serial_from_name("pixma:MX920_192.168.1.2") == ""
    assert serial_from_name("fujitsu:libusb:001:007") == ""


def test_stable_name_drops_bus_numbers_and_entry_index():
    assert stable_name("fujitsu:libusb:001:007") == stable_name("fujitsu:libusb:003:012")
    assert stable_name("airscan:e0:Office") == stable_name("airscan:e4:Office")
    assert stable_name("brother4:bus2;dev1") == stable_name("brother4:bus5;dev3")


def test_replugged_scanner_is_found_under_its_new_name():
    chosen = _dev("fujitsu:libusb:001:007").identity
    listed = [_dev("test:0", "Noname", "frontend-tester"), _dev("fujitsu:libusb:003:012")]
    assert chosen.find(listed) == listed[1]
    assert chosen.find([listed[0]]) is None


def test_serial_tells_two_identical_scanners_apart():
    a, b = (_dev("hpaio:/usb/OJ?serial=AAA", "HP", "OJ"), _dev("hpaio:/usb/OJ?serial=BBB",
                                                             "HP", "OJ"))
    assert b.identity.find([a, b]) == b
    assert a.identity.find([b]) is None  # the other unit is not "ours"
    assert ScannerIdentity("hp", "oj").find([a, b]) == a  # no serial known: the first


def test_without_serial_the_stable_name_breaks_ties():
    usb = _dev("fujitsu:libusb:002:003")
    net = _dev("fujitsu:net:10.0.0.5")
    assert net.identity.find([usb, net]) == net
    assert usb.identity.find([net, _dev("fujitsu:libusb:004:009")]).name.endswith("004:009")
