"""Put dossiers, scanned papers and jobs straight into the store, as the worker would.

No worker or scanner runs in the web tests: the web only reads what the worker wrote,
so writing the same rows and files directly tests the screens on realistic data.
"""

from __future__ import annotations

import io
import json
import sqlite3
from typing import Any

from PIL import Image, ImageDraw

from appliance.records import dossiers
from appliance.store import jobs
from appliance.store.db import transaction
from appliance.store.files import FileStore
from appliance.system.config import Config


def page_image(seed: int, blank: bool = False) -> Image.Image:
    image = Image.new("RGB", (420, 594), "white")
    if not blank:
        draw = ImageDraw.Draw(image)
        draw.rectangle((30, 30, 390, 60), fill="black")
        for i in range(12):
            width = 120 + (seed * 37 + i * 53) % 240
            draw.rectangle((30, 90 + i * 36, 30 + width, 104 + i * 36), fill=(40, 40, 40))
    return image


def add_scanned_paper(conn: sqlite3.Connection, config: Config, dossier_id: int,
                      title: str = "Tờ khai TK1-TS", pages: int = 2, blank: tuple[int, ...] = (),
                      fields: dict[str, Any] | None = None, finished: bool = True,
                      seed: int = 0) -> int:
    """A paper with `pages` stored pages (PNG + thumbnail), OCR text and, if finished, a PDF."""
    files = FileStore(config.paths.files)
    images = []
    with transaction(conn):
        paper_id = dossiers.add_paper(conn, dossier_id, title)
        for n in range(1, pages + 1):
            image = page_image(seed * 100 + n, blank=n in blank)
            images.append(image)
            png = io.BytesIO()
            image.save(png, "PNG")
            sha = files.put(png.getvalue(), ".png")
            thumb = image.copy()
            thumb.thumbnail((120, 170))
            jpg = io.BytesIO()
            thumb.save(jpg, "JPEG", quality=80)
            files.put_derived(sha, ".thumb.jpg", jpg.getvalue())
            page_id = dossiers.add_page(conn, paper_id, sha, image.width, image.height, 200,
                                        n in blank)
            dossiers.set_page_ocr(conn, page_id, {"lines": [
                {"text": "Họ và tên: Nguyễn Văn An", "box": [0, 0, 1, 1], "confidence": 0.9},
                {"text": f"Trang {n}", "box": [0, 0, 1, 1], "confidence": 0.9},
            ]}, 0.1)
    if finished:
        pdf = io.BytesIO()
        images[0].save(pdf, "PDF", save_all=True, append_images=images[1:], resolution=200)
        pdf_sha = files.put(pdf.getvalue(), ".pdf")
        with transaction(conn):
            dossiers.set_paper_result(conn, paper_id, pdf_sha, len(pdf.getvalue()), fields or {
                "values": {"full_name": "NGUYỄN VĂN AN", "cccd": "001203004567"},
                "problems": ["birth_date"], "uncertain": ["cccd"],
            })
    return paper_id


def add_job(conn: sqlite3.Connection, dossier_id: int, state: str = "running",
            progress: dict[str, Any] | None = None, error_key: str | None = None,
            params: dict[str, Any] | None = None) -> int:
    job_id = jobs.enqueue(conn, "scan", dossier_id, params or {"source": "adf", "title": "x"})
    update_job(conn, job_id, state, progress or {}, error_key)
    return job_id


def update_job(conn: sqlite3.Connection, job_id: int, state: str,
               progress: dict[str, Any], error_key: str | None = None) -> None:
    conn.execute(
        "UPDATE jobs SET state=?, progress_json=?, error_key=?, error_detail=? WHERE id=?",
        (state, json.dumps(progress), error_key, error_key, job_id),
    )


def submitted_dossier(conn: sqlite3.Connection, config: Config, pages: int = 2,
                      blank: tuple[int, ...] = ()) -> int:
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    add_scanned_paper(conn, config, dossier_id, pages=pages, blank=blank)
    dossiers.submit(conn, dossier_id)
    return dossier_id
