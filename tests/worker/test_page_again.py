"""A page with handwritten notes is scanned again as its own image (Circular 01/2023
Art. 8): from the kiosk's page view, through a real worker and the eSCL emulator
behind sane-airscan, the new image lands right after that page, the page itself and
the rest of the paper stay, in order, and the paper's PDF has every image."""

from __future__ import annotations

import socket

import pytest

from appliance.records import dossiers
from appliance.store import jobs
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.web import create_app
from tests.helpers.processes import wait_for
from tests.imaging.test_imaging_pages import _pdf_pages
from tests.web.forms import AGREE, post_form
from tests.worker.test_capabilities import setup  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(300)


def _wait_idle(conn, dossier_id: int) -> None:
    """Until no scan is queued or running and every paper has its PDF."""
    wait_for(lambda: jobs.active_for_dossier(conn, dossier_id) is None and
             (d := dossiers.get(conn, dossier_id)).papers and
             all(p.pdf_sha256 for p in d.papers), 180, "the scan")


def _two_pages_scanned(setup):  # noqa: F811
    """A kiosk dossier with one paper of two pages fed through the real worker:
    (config, conn, kiosk client, dossier id, page ids)."""
    config, procs, port = setup
    procs.start("scanner", "demo-scanner", "--port", str(port), "--adf-pages", "2")
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 30,
             "the demo scanner")
    procs.start("worker", "worker")
    conn = connect(config.paths.database)
    client = create_app(config, {"TESTING": True}).test_client()
    post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE},
              page="/kiosk/consent?procedure=tk1-ts")
    with client.session_transaction() as s:
        dossier_id = int(s["dossier_id"])
    post_form(client, "/kiosk/dossier/scan", {"source": "adf"}, page="/kiosk/dossier")
    _wait_idle(conn, dossier_id)
    [paper] = dossiers.get(conn, dossier_id).papers
    return config, conn, client, dossier_id, tuple(pg.id for pg in paper.pages)


def _scan_first_page(client, conn, dossier_id: int, first: int, action: str, pages: int):
    """The kiosk's `action` ("again": an extra image, "retake") on the first page, the
    worker's scan awaited until the dossier holds `pages` pages; its one paper."""
    r = post_form(client, f"/kiosk/dossier/pages/{first}/{action}", {},
                  page=f"/kiosk/dossier/pages/{first}")
    assert r.status_code == 302
    wait_for(lambda: jobs.active_for_dossier(conn, dossier_id) is None and
             dossiers.get(conn, dossier_id).page_count == pages, 180, f"the page ({action})")
    [paper] = dossiers.get(conn, dossier_id).papers
    return paper


def test_an_extra_image_of_a_page_lands_right_after_it(setup):  # noqa: F811
    config, conn, client, dossier_id, (first, second) = _two_pages_scanned(setup)

    view = client.get(f"/kiosk/dossier/pages/{first}").get_data(as_text=True)
    assert 'id="again"' in view and "Quét thêm ảnh trang này" in view
    paper = _scan_first_page(client, conn, dossier_id, first, "again", 3)
    ids = [pg.id for pg in paper.pages]
    assert [pg.ordinal for pg in paper.pages] == [1, 2, 3]
    assert ids[0] == first and ids[2] == second and ids[1] not in (first, second)
    files = FileStore(config.paths.files, sealer=conn.sealer)
    wait_for(lambda: (p := dossiers.get(conn, dossier_id).papers[0]).pdf_sha256 and
             len(_pdf_pages(files.read(p.pdf_sha256, ".pdf"))) == 3, 60, "the PDF of 3 pages")
    conn.close()


def test_a_retaken_page_keeps_its_place(setup):  # noqa: F811
    """Retaking the first page of two: the new image is page 1, not appended after the
    page that was second (the original order, Circular 01/2023 Art. 8)."""
    config, conn, client, dossier_id, (first, second) = _two_pages_scanned(setup)
    paper = _scan_first_page(client, conn, dossier_id, first, "retake", 2)
    ids = [pg.id for pg in paper.pages]
    assert [pg.ordinal for pg in paper.pages] == [1, 2]
    assert ids[1] == second and ids[0] not in (first, second)
    conn.close()
