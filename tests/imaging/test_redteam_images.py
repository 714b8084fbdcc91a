"""Red-team: Pillow-level pages the scanner path does not make, straight into the
imaging functions and `records.pages.store_page` (the one way a page is stored).

Only the scanner feeds store_page today (python-sane gives "RGB" or "L"); these are
the inputs a new backend, a frontend change or an import would bring. Each must be
stored right or refused with a clear error. xfail(strict) marks a real bug.
"""

from __future__ import annotations

import io
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from appliance.imaging import pages as imaging
from appliance.records import dossiers
from appliance.records import pages as page_store
from appliance.store.db import connect
from appliance.store.files import FileStore
from appliance.system.config import Config, with_overrides

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, FileStore, int]]:
    config: Config = with_overrides(Config(), paths={"data_dir": str(tmp_path)})
    conn = connect(config.paths.database)
    try:
        yield conn, FileStore(config.paths.files), dossiers.create(conn, config, "khac")
    finally:
        conn.close()


def _text_page(size: tuple[int, int] = (600, 800)) -> Image.Image:
    """White paper, black lines of 'text' (an L page)."""
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    for y in range(80, size[1] - 80, 40):
        draw.rectangle((60, y, size[0] - 60, y + 12), fill=0)
    return page


def _stored_grey(store, image: Image.Image,
                 dpi: int = 200) -> tuple[np.ndarray, page_store.StoredPage]:
    conn, files, dossier_id = store
    stored = page_store.store_page(conn, files, dossier_id, None, image, "Trang", dpi=dpi)
    return np.asarray(page_store.load_image(files, stored.sha256).convert("L")), stored


def _page_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0])


# --- stored right ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "P", "RGBA"])
def test_other_modes_are_stored_as_the_page_they_show(store, mode):
    """Bilevel, CMYK, an opaque palette and opaque RGBA pages: the stored master is
    the same picture (text kept, not blank), at the dpi given."""
    page = _text_page().convert(mode)
    grey, stored = _stored_grey(store, page, dpi=300)
    assert (grey == np.asarray(page.convert("RGB").convert("L"))).all()
    assert not stored.check.blank
    conn, files, _ = store
    png = Image.open(io.BytesIO(files.read(stored.sha256, page_store.PNG)))
    assert round(png.info["dpi"][0]) == 300


@pytest.mark.parametrize("bogus", [(0, 0), (1e9, 1e9), (-5, -5)])
def test_store_page_takes_the_given_dpi_over_bogus_metadata(store, bogus):
    """The dpi the scanner used is passed in; whatever the image's own tag says
    (none, zero, absurd) does not reach the master."""
    page = _text_page().convert("RGB")
    page.info["dpi"] = bogus
    _, stored = _stored_grey(store, page, dpi=200)
    conn, files, _ = store
    png = Image.open(io.BytesIO(files.read(stored.sha256, page_store.PNG)))
    assert round(png.info["dpi"][0]) == 200
    row = conn.execute("SELECT dpi, width, height FROM pages WHERE id=?",
                       (stored.page_id,)).fetchone()
    assert tuple(row) == (200, 600, 800)


def test_exif_orientation_does_not_change_the_stored_pixel_grid(store):
    """A JPEG tagged 'rotate 90' (orientation 6): the page is kept as its pixels
    are, and the row's size matches the stored master."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    _text_page().convert("RGB").save(buf, "JPEG", exif=exif)
    image = Image.open(buf)
    image.load()
    grey, stored = _stored_grey(store, image)
    assert grey.shape == (800, 600)
    assert (stored.check.width, stored.check.height) == (600, 800)


def test_an_image_with_no_rows_is_refused_with_a_value_error(store):
    conn, files, dossier_id = store
    with pytest.raises(ValueError):
        page_store.store_page(conn, files, dossier_id, None, Image.new("RGB", (50, 0)),
                              "Trang", dpi=200)
    assert _page_rows(conn) == 0


# --- refused clearly or stored right: bugs -----------------------------------------------

@pytest.mark.parametrize("size", [(0, 0), (0, 50)])
def test_an_empty_image_is_refused_with_a_clear_error_and_nothing_stored(store, size):
    conn, files, dossier_id = store
    with pytest.raises(ValueError):
        page_store.store_page(conn, files, dossier_id, None, Image.new("RGB", size),
                              "Trang", dpi=200)
    assert _page_rows(conn) == 0


def test_a_16_bit_grey_page_keeps_its_text(store):
    # A real 16-bit scan: ink around 4000, paper around 56000 (of 65535).
    text = np.asarray(_text_page(), np.uint32)
    sixteen = (4000 + text * 204).astype("<u2")
    image = Image.frombytes("I;16", (600, 800), sixteen.tobytes())
    grey, stored = _stored_grey(store, image)
    assert not stored.check.blank
    assert grey.min() < 64 and np.median(grey) > 200


@pytest.mark.parametrize("mode", ["LA", "RGBA", "P"])
def test_a_page_with_a_transparent_background_is_stored_on_white(store, mode):
    text = np.asarray(_text_page()) < 128  # where the black text is
    if mode == "P":
        image = Image.fromarray(text.astype(np.uint8), "L").convert("P")
        image.putpalette([0, 0, 0, 0, 0, 0])  # both black; index 0 transparent
        image.info["transparency"] = 0
    else:
        alpha = np.where(text, 255, 0).astype(np.uint8)
        la = np.dstack([np.zeros_like(alpha), alpha])
        image = Image.fromarray(la, "LA").convert(mode)
    grey, stored = _stored_grey(store, image)
    assert np.median(grey) > 200, "the transparent paper must come out white"
    assert grey[text].max() < 64, "the opaque text stays black"
    assert not stored.check.flags


@pytest.mark.parametrize("size", [(1, 20000), (100000, 1)], ids=["tall", "wide"])
def test_page_checks_of_a_thin_strip_stay_small_in_memory(size):
    strip = Image.new("RGB", size, "white")
    tracemalloc.start()
    try:
        check = imaging.check_page(strip)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert check.blank and not check.flags
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB for a {size[0]}x{size[1]} strip"


@pytest.mark.parametrize("bogus", [(1e9, 1e9), (-5, -5)])
def test_encode_png_refuses_absurd_dpi_metadata_clearly(bogus):
    page = Image.new("RGB", (50, 50), "white")
    page.info["dpi"] = bogus
    try:
        data = imaging.encode_png(page)
    except ValueError as refused:
        assert "dpi" in str(refused).lower()
        return
    assert Image.open(io.BytesIO(data)).size == (50, 50)


def test_pdf_of_a_page_beyond_jpeg_limits_is_refused_clearly():
    try:
        pdf = imaging.assemble_pdf([Image.new("RGB", (70000, 2), "white")], 200, "t", "a")
    except ValueError:
        return
    assert pdf.startswith(b"%PDF")


@pytest.mark.parametrize("values", [(4000, 56000), (10, 240)])
def test_a_32_bit_grey_page_is_read_on_the_scale_its_values_fit(store, values):
    """Mode "I" holds 16-bit scans (older decoders) or Pillow's 8-bit convention: either
    way the text stays black on white, never clipped to white nor stretched."""
    ink, paper = values
    text = np.asarray(_text_page(), np.int64)
    image = Image.fromarray((ink + text * (paper - ink) // 255).astype(np.int32), "I")
    grey, stored = _stored_grey(store, image)
    assert not stored.check.blank and not stored.check.flags
    assert grey.min() < 64 and np.median(grey) > 200


@pytest.mark.parametrize("pixels", [np.full((40, 40), -5.0, np.float32),
                                    np.full((40, 40), np.nan, np.float32),
                                    np.full((40, 40), 1e9, np.float32)])
def test_float_grey_of_no_known_scale_is_refused_and_nothing_stored(store, pixels):
    conn, files, dossier_id = store
    with pytest.raises(ValueError):
        page_store.store_page(conn, files, dossier_id, None, Image.fromarray(pixels, "F"),
                              "Trang", dpi=200)
    assert _page_rows(conn) == 0


@pytest.mark.parametrize("dpi", [0, -5, 10**9])
def test_encode_png_refuses_an_absurd_dpi_argument(dpi):
    with pytest.raises(ValueError, match="dpi"):
        imaging.encode_png(Image.new("RGB", (50, 50), "white"), dpi=dpi)


def _cut_short(page: Image.Image, from_row: int) -> Image.Image:
    """What sane-airscan makes of a JPEG cut off mid-transfer: libjpeg's flat grey 128
    from where the data stopped."""
    pixels = np.array(page.convert("RGB"))
    pixels[from_row:] = 128
    return Image.fromarray(pixels, "RGB")


def test_a_page_cut_off_mid_transfer_is_flagged_incomplete():
    from appliance.imaging.flags import PageFlag

    page = _cut_short(_text_page(), 500)
    assert imaging.incomplete_rows(page) == 300
    assert PageFlag.INCOMPLETE in imaging.check_page(page).flags
    # airscan pads an image a pixel short of the window with white, right and bottom
    padded = np.array(page)
    padded[:, -1] = padded[-2:] = 255
    assert imaging.incomplete_rows(Image.fromarray(padded)) == 298
    assert PageFlag.INCOMPLETE in imaging.check_page(Image.fromarray(padded)).flags
    assert PageFlag.INCOMPLETE in imaging.check_page(_cut_short(_text_page(), 0)).flags


def test_grey_on_a_whole_page_is_not_taken_for_a_cut_off_transfer():
    """A grey rule or box in a form, a grey footer a few rows tall, grey paper with a
    scanner's noise: none is the decoder's exact, full-width, tall fill."""
    from appliance.imaging.flags import PageFlag

    def flags(pixels: np.ndarray) -> tuple[PageFlag, ...]:
        return imaging.check_page(Image.fromarray(pixels.astype(np.uint8), "RGB")).flags

    page = np.array(_text_page().convert("RGB"))
    rule = page.copy()
    rule[-10:] = 128  # a 10-row grey rule along the bottom edge: too thin
    box = page.copy()
    box[-200:, 60:-60] = 128  # a grey box with white paper either side: not the width
    noisy = page.copy()
    rng = np.random.default_rng(1)
    noisy[-300:] = 128 + rng.integers(-2, 3, noisy[-300:].shape)  # a real grey: noise
    for pixels in (rule, box, noisy):
        assert PageFlag.INCOMPLETE not in flags(pixels)
        assert imaging.incomplete_rows(Image.fromarray(pixels.astype(np.uint8))) == 0


def test_thumbnail_of_extreme_strips_is_a_valid_small_jpeg():
    for size in ((1, 20000), (20000, 1)):
        thumb = Image.open(io.BytesIO(imaging.thumbnail_jpeg(Image.new("L", size, 255))))
        assert thumb.format == "JPEG" and max(thumb.size) <= 320 and min(thumb.size) >= 1


# --- the web: no way in for image bytes ---------------------------------------------------

def test_no_web_endpoint_accepts_image_bytes():
    """Pages only come from the scanner: no route of the API or the screens takes an
    uploaded image (nothing to attack with hostile files), and request bodies are
    capped small."""
    from appliance.web.openapi import spec

    doc = spec()
    taken = {media for ops in doc["paths"].values() for op in ops.values()
             if isinstance(op, dict)
             for media in op.get("requestBody", {}).get("content", {})}
    assert taken, "the spec lists request bodies"
    assert not {m for m in taken if m.startswith(("image/", "multipart/", "application/pdf",
                                                   "application/octet-stream"))}, taken
