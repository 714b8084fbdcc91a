"""Red team 14 (issue 12): the doctor's `central_key` line (358a812) on the technician
panel, through Flask's client against the real templates and translations.

Bug (fixed): the row is labelled "central_key", the check's raw name, in both
languages: the panel's list of translated check names lacks it.

Held: a key file at a path with HTML and quote characters, holding a CERTIFICATE
block cryptography cannot read (its long error text), shows as FAIL with its next step
in Vietnamese (NFC, diacritics) and in English, with every character escaped (no tag,
attribute or entity of the file's making); a good two-key file shows both ids, OK, and
no next step; the JSON API says the same.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import unicodedata
from html import unescape
from pathlib import Path

from appliance.system.config import Config, with_overrides
from appliance.web import create_app

TECH_PIN = "246813"
TECH = {"X-Technician-PIN": TECH_PIN}
ODD = 'k<b>x<i>&amp;"\'é'


def _row(html: str, name: str) -> tuple[str, str]:
    table = html.split('id="doctor"', 1)[1].split("</table>", 1)[0]
    for check, verdict, body in re.findall(
            r'<tr data-check="([^"]+)" data-verdict="([^"]+)">(.*?)</tr>', table, re.S):
        if check == name:
            return verdict, body
    raise AssertionError(f"no {name} row")


def _client(config: Config, key_file: Path):
    cfg = with_overrides(config, web={"technician_pin": TECH_PIN},
                         mqtt={"host": "broker.example", "central_public_key": str(key_file)})
    Path(cfg.paths.data_dir).mkdir(parents=True, exist_ok=True)
    return create_app(cfg, {"TESTING": True}).test_client()


def test_unreadable_key_file_at_an_odd_path_fails_with_its_next_step_escaped(
        config: Config, tmp_path: Path) -> None:
    folder = tmp_path / ODD
    folder.mkdir()
    key_file = folder / "central<script>.pem"
    junk = base64.encodebytes(b"\x30\x82\x01\x00" + b"\x02\x01\x00" * 80).decode()
    key_file.write_text(f"-----BEGIN CERTIFICATE-----\n{junk}-----END CERTIFICATE-----\n")
    client = _client(config, key_file)

    vi = client.get("/technician", headers=TECH).get_data(as_text=True)
    verdict, body = _row(vi, "central_key")
    assert verdict == "fail"
    assert "<b>" not in body and "<script>" not in body and "<i>" not in body
    text = unescape(re.sub(r"<[^>]+>", " ", body))
    assert unicodedata.is_normalized("NFC", text)
    assert "Không dùng được" in text and str(key_file) in text
    assert "Cài lại tệp khóa công khai của trung ương" in text          # the next step
    assert "cannot be read" in text                                     # the error kept
    # Attributes (title=) carry the English text escaped, not cut at a quote.
    titles = re.findall(r'title="([^"]*)"', body)
    assert any(str(key_file) in unescape(t) for t in titles), titles

    en = client.get("/technician?lang=en", headers=TECH).get_data(as_text=True)
    verdict, body = _row(en, "central_key")
    text = unescape(re.sub(r"<[^>]+>", " ", body))
    assert verdict == "fail"
    assert "Install the central office's public key file again" in text
    assert "<script>" not in body

    api = client.get("/api/technician/doctor", headers=TECH).get_json()
    row = next(r for r in api["rows"] if r["name"] == "central_key")
    assert row["verdict"] == "fail" and row["next_step"] and str(key_file) in row["summary"]


def test_the_row_is_named_in_vietnamese_and_in_english(config: Config, tmp_path: Path):
    key_file = tmp_path / "missing.pem"
    client = _client(config, key_file)
    for lang, label in (("vi", "Khóa xác nhận của trung ương"), ("en", "Central office key")):
        html = client.get(f"/technician?lang={lang}", headers=TECH).get_data(as_text=True)
        head = re.search(r'<th scope="row">(.*?)</th>', _row(html, "central_key")[1], re.S)
        assert head is not None and unescape(head.group(1)).strip() == label, head
        assert unicodedata.is_normalized("NFC", head.group(1))


def test_two_keys_show_both_ids_ok_without_a_next_step(config: Config, tmp_path: Path):
    ids = []
    parts = []
    for name in ("old", "new"):
        key = tmp_path / f"{name}.key"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                       check=True, capture_output=True)
        parts.append(subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout"],
                                    check=True, capture_output=True).stdout)
        der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform",
                              "DER"], check=True, capture_output=True).stdout
        ids.append(hashlib.sha256(der[-32:]).hexdigest()[:16])
    key_file = tmp_path / "acks.pem"
    key_file.write_bytes(b"".join(parts))
    client = _client(config, key_file)
    verdict, body = _row(client.get("/technician", headers=TECH).get_data(as_text=True),
                         "central_key")
    text = unescape(re.sub(r"<[^>]+>", " ", body))
    assert verdict == "ok", text
    assert f"chỉ tin xác nhận được ký bằng 2 khóa: {ids[0]}, {ids[1]}" in text, text
    assert unicodedata.is_normalized("NFC", text)
    assert re.search(r'class="doctor-next"[^>]*>\s*</td>', body), body
