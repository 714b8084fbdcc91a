"""Scan-time page flags reach whoever is scanning: the kiosk thumbnail's badge, the
kiosk page view's note with the next step, and the officer's page view. The page is
flagged, never dropped: it is still in the paper, in its place."""

from __future__ import annotations

from appliance.imaging.flags import PageFlag
from appliance.records import dossiers
from appliance.records import pages as page_store
from appliance.store.files import FileStore
from tests.imaging.test_page_flags import lid
from tests.web.forms import AGREE, post_form
from tests.web.helpers import DPI, page_image, public_id


def test_a_covered_page_is_kept_and_shown_with_its_next_step(client, conn, config):
    r = post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE},
                  page="/kiosk/consent?procedure=tk1-ts")
    assert r.status_code == 302
    with client.session_transaction() as s:
        dossier_id = int(s["dossier_id"])
    files = FileStore(config.paths.files)
    first = page_store.store_page(conn, files, dossier_id, None, page_image(1), "Tờ khai",
                                  dpi=DPI)
    covered = page_store.store_page(conn, files, dossier_id, first.paper_id,
                                    lid(page_image(2)), "Tờ khai", dpi=DPI)
    assert first.check.flags == () and covered.check.flags == (PageFlag.HAND_OR_LID,)

    stored = dossiers.get(conn, dossier_id).papers[0].pages
    assert [pg.flags for pg in stored] == [(), (PageFlag.HAND_OR_LID,)]  # kept, in order

    thumbs = client.get("/kiosk/dossier").get_data(as_text=True)
    assert thumbs.count("Bị che") == 1 and "thumb-flagged" in thumbs
    assert "Bỏ tay ra, đặt lại giấy ngay ngắn, đóng nắp và quét lại" in thumbs
    view = client.get(f"/kiosk/dossier/pages/{covered.page_id}").get_data(as_text=True)
    assert "Bỏ tay ra, đặt lại giấy ngay ngắn, đóng nắp và quét lại" in view
    clean = client.get(f"/kiosk/dossier/pages/{first.page_id}").get_data(as_text=True)
    assert "Bỏ tay ra" not in clean

    officer = client.get(f"/officer/dossiers/{public_id(conn, dossier_id)}/pages/"
                         f"{covered.sha256}").get_data(as_text=True)
    assert "Bỏ tay ra, đặt lại giấy ngay ngắn" in officer


def test_the_api_documents_every_flag():
    from appliance.web import openapi

    page = openapi.spec()["components"]["schemas"]["Page"]["properties"]
    assert page["flags"]["items"]["enum"] == [f.value for f in PageFlag]
