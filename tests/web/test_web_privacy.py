"""The web's side of issue 8's data rules: files leave the store only opened after the
role guard, every officer view is in the audit log, and an officer erases a citizen's
data on request (with its token, before sending), leaving the code."""

from __future__ import annotations

from appliance.records import audit, dossiers
from appliance.store.files import FileStore
from tests.web.forms import post_form
from tests.web.helpers import public_id, submitted_dossier


def test_sealed_files_are_served_clear_to_the_officer_and_each_view_logged(client, conn,
                                                                           config):
    dossier_id = submitted_dossier(conn, config, pages=1)
    pid = public_id(conn, dossier_id)  # what URLs carry
    d = dossiers.get(conn, dossier_id)
    sha = d.papers[0].pages[0].sha256
    raw = FileStore(config.paths.files).path(sha, ".png").read_bytes()
    assert not raw.startswith(b"\x89PNG")  # sealed at rest
    assert client.get(f"/officer/dossiers/{pid}").status_code == 200
    r = client.get(f"/api/pages/{sha}/image")
    assert r.status_code == 200 and r.data.startswith(b"\x89PNG")
    assert r.headers["Cache-Control"] == "no-store"
    r = client.get(f"/api/papers/{d.papers[0].pdf_sha256}/pdf")
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    views = [(e.action, e.detail["what"]) for e in audit.entries(conn, dossier_id)
             if e.action == "view"]
    assert views == [("view", "dossier"), ("view", "page"), ("view", "pdf")]
    assert audit.verify(conn).ok


def test_officer_erases_on_request_with_token_and_confirmation(client, conn, config):
    dossier_id = submitted_dossier(conn, config, pages=1)
    pid = public_id(conn, dossier_id)  # what URLs carry
    page = f"/officer/dossiers/{pid}"
    path = f"{page}/erase"
    assert client.post(path, data={"confirm": "yes", "officer": "Lê Văn C"}).status_code \
        in (302, 400)  # no token: refused
    assert post_form(client, path, {"officer": "Lê Văn C"}, page=page).status_code == 302
    assert dossiers.get(conn, dossier_id).erased_at is None  # not confirmed
    r = post_form(client, path, {"officer": "Lê Văn C", "confirm": "yes"}, page=page)
    assert r.status_code == 302
    d = dossiers.get(conn, dossier_id)
    assert d.erased_at is not None and d.status == "cancelled" and d.code
    assert audit.entries(conn, dossier_id)[-1].action == "delete"
    sha = d.papers[0].pages[0].sha256
    assert client.get(f"/api/pages/{sha}/image").status_code == 404
