"""Sign-off under an enrolled officer's own PIN names that officer (issue 14 item 4:
officers enrolled with their PINs at provisioning), never the counter's generic
"Cán bộ tiếp nhận (device)" nor a name another officer left remembered on the counter."""

from __future__ import annotations

import re

from appliance.records import audit, dossiers
from appliance.store import officers
from tests.web.forms import post_form
from tests.web.helpers import public_id, submitted_dossier

OFFICER, PIN = "Lê Thị Hoa", "739104"
OTHER = "Trần Văn Bình"  # an earlier officer whose typed name the counter remembers


def signer_field(page: str) -> str:
    m = re.search(r'<input[^>]*id="officer"[^>]*value="([^"]*)"', page)
    assert m, "the sign-off form has no officer field"
    return m.group(1)


def test_an_enrolled_officer_signs_under_their_own_name(client, conn, config):
    officers.enrol(conn, OFFICER, PIN)
    officers.enrol(conn, OTHER, "284615")
    dossier_id = submitted_dossier(conn, config)
    detail = f"/officer/dossiers/{public_id(conn, dossier_id)}"
    r = post_form(client, "/staff/login", {"pin": PIN, "next": "/officer"},
                  page="/staff/login?next=/officer")
    assert r.status_code == 302
    client.set_cookie("officer_name", OTHER, path="/officer")

    # the form offers the officer signed in as the signer, not the remembered name
    assert signer_field(client.get(detail).get_data(as_text=True)) == OFFICER
    post_form(client, f"{detail}/sign", {"officer": "", "checked": "yes"}, page=detail)
    d = dossiers.get(conn, dossier_id)
    assert d.status == "signed" and d.signed_by == OFFICER
    assert "Cán bộ tiếp nhận" not in d.signed_by
    signed = [e for e in audit.entries(conn, dossier_id) if e.action == "sign"]
    assert signed and signed[-1].actor == OFFICER
