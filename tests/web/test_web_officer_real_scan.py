"""The review screen on a page the real chain produced: the eSCL emulator's form
(`appliance demo-scanner`, through sane-airscan), scanned by the worker, read by the
ONNX OCR, its fields extracted with their boxes; the officer taps each field that has
a box and its outline lands where the stored box says on the image as shown.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.records import corrections, dossiers
from appliance.store.db import connect
from appliance.system import config as config_mod
from tests.helpers.processes import (
    Processes,
    demo_scanner_sane,
    free_port,
    start_scanning_appliance,
    wait_for,
)
from tests.web.helpers import row_id
from tests.web.test_web_browser import CHROMIUM
from tests.web.test_web_faces import LARGE, check_screen, new_page, wait_images
from tests.web.test_web_keyboard import sign_in
from tests.web.test_web_officer_review import assert_box_on_image

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.timeout(240),
]
sync_api = pytest.importorskip("playwright.sync_api")
PIN = "2468"


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[tuple[str, config_mod.Config]]:
    tmp = tmp_path_factory.mktemp("realscan")
    web_port, scanner_port = free_port(), free_port()
    config = config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp / "device")},
        web={"bind": f"127.0.0.1:{web_port}", "officer_pin": PIN},
        scanner={"sane_config_dir": demo_scanner_sane(tmp, scanner_port)})
    procs = Processes.for_config(tmp, config)
    try:
        base = start_scanning_appliance(procs, web_port, scanner_port, 1)
        yield base, config
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()


def test_boxes_of_a_real_scan_land_on_their_text(browser, rig, tmp_path):
    base, config = rig
    context, page = new_page(browser, LARGE)
    try:
        page.goto(f"{base}/kiosk")

        def post(path: str, body: dict | None = None) -> dict:
            token = page.request.get(f"{base}/api/session").json()["csrf_token"]
            r = page.request.post(f"{base}{path}", data=body or {},
                                  headers={"X-CSRFToken": token, "Origin": base})
            assert r.ok, (path, r.status, r.text())
            return r.json()

        created = post("/api/dossiers", {"procedure": "tk1-ts"})
        job = post(f"/api/dossiers/{created['id']}/scans", {"source": "adf"})

        def finished() -> bool:
            state = page.request.get(f"{base}/api/jobs/{job['job_id']}").json()["state"]
            assert state != "failed", state
            return state == "done"

        wait_for(finished, 180, "the scan, OCR and extraction")
        post(f"/api/dossiers/{created['id']}/submit")
        conn = connect(config.paths.database)
        try:
            dossier_id = row_id(conn, created["id"])
            [paper] = dossiers.get(conn, dossier_id).papers
            page_px = (paper.pages[0].width, paper.pages[0].height)
            boxed = [f for f in corrections.review_fields(conn, config, paper.id)
                     if f.box is not None and f.page == 0]
        finally:
            conn.close()
        assert len(boxed) >= 3, boxed  # name, dates, numbers read off the form
        sign_in(page, base)
        page.goto(f"{base}/officer/dossiers/{created['id']}")
        wait_images(page)
        for f in boxed:
            page.locator(f"#paper-{paper.id} [data-pick='{f.name}']").click()
            assert_box_on_image(page, paper.id, f.name, f.box, page_px)
        page.locator(f"#paper-{paper.id} [data-pick='{boxed[0].name}']").click()
        check_screen(page, "officer-review-real-scan-1920x1080-vi", tmp_path)
    finally:
        context.close()
