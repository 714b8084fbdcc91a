"""Red team 20 (issue 12): the screens with sync's new state `acks_refused` (b8f551d).

The change's own test looks at the technician page only. Here, on the app's own
pages and API (no PIN set, as in tests/web/conftest.py): the officer's "link down"
notice beside a signed record not delivered, the technician's notice and status row,
all in Vietnamese with full diacritics (NFC), /api/status and its OpenAPI document.
"""

from __future__ import annotations

import html as html_mod
import json
import unicodedata
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.store.db import set_state
from tests.web.helpers import submitted_dossier

pytestmark = pytest.mark.timeout(30)
VI = json.loads((Path(__file__).resolve().parents[2] / "appliance/web/translations/vi.json")
                .read_text(encoding="utf-8"))["state.sync.acks_refused"]


def page_of(client, path: str) -> str:  # noqa: ANN001 - Flask's test client
    r = client.get(path)
    assert r.status_code == 200, path
    return html_mod.unescape(r.get_data(as_text=True))


def test_acks_refused_is_said_to_officers_and_technicians_in_vietnamese(client, conn, config):
    assert unicodedata.is_normalized("NFC", VI)
    assert "không cho thiết bị này nhận xác nhận" in VI
    dossiers.sign_off(conn, config, submitted_dossier(conn, config), "Lê Thị B")
    set_state(conn, "sync.state", "acks_refused")
    set_state(conn, "sync.last_error", "subscription to bhxh/devices/kiosk-01/acks refused "
              "by the broker: Not authorized")
    officer = page_of(client, "/officer")
    assert 'id="link-down"' in officer and VI in officer
    tech = page_of(client, "/technician")
    assert 'id="acks-refused"' in tech and tech.count(VI) >= 1
    rows = tech.split('id="status"')[1].split("</table>")[0]
    assert VI in rows and "dịch vụ đồng bộ chưa chạy" not in rows  # not "unknown"
    assert unicodedata.is_normalized("NFC", officer) and unicodedata.is_normalized("NFC", tech)
    status = client.get("/api/status").get_json()
    assert status["sync_state"] == "acks_refused" and status["queue_depth"] == 1
    spec = client.get("/api/openapi.json").get_json()
    described = spec["components"]["schemas"]["Status"]["properties"]["sync_state"]
    assert "acks_refused" in described["description"]
    # Delivered: the officer's notice goes, the technician's stays while refused.
    conn.execute("UPDATE outbox SET state='delivered', delivered_at=1")
    conn.commit()
    assert 'id="link-down"' not in page_of(client, "/officer")
    assert 'id="acks-refused"' in page_of(client, "/technician")
    # Granted again: no notice is left.
    set_state(conn, "sync.state", "connected")
    assert 'id="acks-refused"' not in page_of(client, "/technician")
