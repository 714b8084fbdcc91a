"""Bad input is rejected with a clear error, and the next page still reads."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from appliance.ocr.engine import check_image, open_image
from appliance.ocr.errors import BadImageError


def test_unreadable_file(tmp_path):
    p = tmp_path / "scan.png"
    p.write_bytes(b"not a png at all")
    with pytest.raises(BadImageError, match="scan.png"):
        open_image(p)


def test_truncated_file(tmp_path):
    p = tmp_path / "cut.png"
    Image.new("L", (400, 300), 255).save(p)
    p.write_bytes(p.read_bytes()[:60])
    with pytest.raises(BadImageError, match="cut.png"):
        open_image(p)


def test_empty_file_and_empty_image(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(BadImageError):
        open_image(p)
    with pytest.raises(BadImageError, match="empty"):
        check_image(Image.new("L", (0, 0)))


def _png_claiming(width: int, height: int, path):
    """A small PNG whose header claims a huge size: what a decompression bomb looks like."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]  # type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [(30000, 30000), (12000, 9000), (25000, 100)])
def test_enormous_image_refused_before_decoding(tmp_path, size):
    p = tmp_path / "huge.png"
    _png_claiming(*size, p)
    with pytest.raises(BadImageError, match="too large"):
        open_image(p)


def test_worker_goes_on_after_a_bad_page(engine, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(BadImageError):
        engine.read(open_image(bad))
    page = engine.read(Image.new("L", (800, 600), 255))
    assert page.lines == ()
    with pytest.raises(BadImageError):
        engine.read("not an image")  # type: ignore[arg-type]
