"""Synthetic form pages with ground truth, for accuracy tests and the benchmark.

Pages imitate the TK1-TS declaration and similar BHXH forms: centred headers,
numbered fields with upper-case names, dates, ID and insurance numbers, a
table with rules, a stamp. Everything is seeded so a page number always gives
the same pixels and the same truth; fonts are the Vietnamese-capable Debian
ones, including a family the recognizer never trained on (Charis SIL, when
installed).
"""

from __future__ import annotations

import io
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_CANDIDATES = (
    "dejavu/DejaVuSans.ttf",
    "liberation2/LiberationSerif-Regular.ttf",
    "liberation2/LiberationSans-Regular.ttf",
    "noto/NotoSans-Regular.ttf",
    "noto/NotoSerif-Regular.ttf",
    "freefont/FreeSerif.ttf",
    "charis/CharisSIL-Regular.ttf",
)
FONT_ROOT = Path("/usr/share/fonts/truetype")

SURNAMES = ("NGUYỄN", "TRẦN", "LÊ", "PHẠM", "HOÀNG", "HUỲNH", "VŨ", "VÕ", "ĐẶNG", "BÙI",
            "ĐỖ", "HỒ", "NGÔ", "DƯƠNG", "LÝ", "ĐÀO", "TRỊNH", "TRƯƠNG", "PHÙNG", "KIỀU")
MIDDLES = ("VĂN", "THỊ", "HỮU", "ĐỨC", "NGỌC", "THANH", "QUANG", "XUÂN", "MINH", "KIM",
           "BẢO", "THỊ QUỲNH", "THỊ THÚY", "ĐÌNH", "TRỌNG", "HOÀI", "MỸ", "DIỆU")
GIVENS = ("QUỲNH", "HƯỜNG", "NGUYỆT", "TUYẾT", "DŨNG", "HUỆ", "KHẢI", "LƯỠNG", "NHƯỠNG",
          "THẢO", "HIẾU", "NGỌC", "PHƯỢNG", "TRƯỜNG", "DIỄM", "KỲ", "MỸ", "ỶNH", "HỮU",
          "AN", "BÌNH", "CƯỜNG", "HƯƠNG", "LỘC", "PHÚC", "THỦY", "TUẤN", "YẾN", "VIỆT")
PROVINCES = ("Hà Nội", "Thành phố Hồ Chí Minh", "Đà Nẵng", "Hải Phòng", "Cần Thơ",
             "Thừa Thiên Huế", "Quảng Ninh", "Nghệ An", "Thanh Hóa", "Đắk Lắk", "Bà Rịa - Vũng Tàu",
             "Khánh Hòa", "Lâm Đồng", "Bắc Kạn", "Hưng Yên", "Kiên Giang", "Cà Mau")
DISTRICTS = ("Ba Đình", "Hoàn Kiếm", "Cầu Giấy", "Đống Đa", "Thủ Đức", "Gò Vấp", "Ninh Kiều",
             "Hải Châu", "Sơn Trà", "Hạ Long", "Mỹ Tho", "Tuy Hòa", "Buôn Ma Thuột", "Ỷ La")
WARDS = ("Phúc Xá", "Trúc Bạch", "Liễu Giai", "Quán Thánh", "Bến Nghé", "Thảo Điền",
         "Nghĩa Đô", "Dịch Vọng", "Khương Đình", "Hạ Đình", "Mỹ Đình 1", "Tân Định")
ETHNIC = ("Kinh", "Tày", "Thái", "Mường", "Khmer", "Nùng", "H'Mông", "Dao")


@dataclass(frozen=True)
class Field:
    text: str
    kind: str  # name | date | id | text
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Page:
    image: Image.Image
    lines: tuple[Field, ...]  # every line of text in reading order
    values: tuple[Field, ...]  # names, dates and ID numbers that must come out exact
    dpi: int
    font: str
    degraded: bool

    @property
    def text(self) -> str:
        return " ".join(f.text for f in self.lines)

    def fields(self, kind: str) -> list[Field]:
        return [f for f in self.values if f.kind == kind]


def available_fonts() -> list[Path]:
    return [FONT_ROOT / f for f in FONT_CANDIDATES if (FONT_ROOT / f).exists()]


def _name(r: random.Random) -> str:
    return f"{r.choice(SURNAMES)} {r.choice(MIDDLES)} {r.choice(GIVENS)}"


def _date(r: random.Random) -> str:
    return f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1950, 2023)}"


def _digits(r: random.Random, n: int) -> str:
    return "".join(str(r.randint(0, 9)) for _ in range(n))


class _Writer:
    def __init__(self, img: Image.Image, font: ImageFont.FreeTypeFont, ink: int) -> None:
        self.img = img
        self.draw = ImageDraw.Draw(img)
        self.font = font
        self.ink = ink
        self.lines: list[Field] = []
        self.values: list[Field] = []

    def put(self, x: int, y: int, text: str, kind: str = "text",
            font: ImageFont.FreeTypeFont | None = None) -> int:
        """Draw text with its top-left at (x, y); returns the right edge."""
        f = font or self.font
        text = unicodedata.normalize("NFC", text)
        self.draw.text((x, y), text, font=f, fill=self.ink)
        b = self.draw.textbbox((x, y), text, font=f)
        self.lines.append(Field(text, kind, (b[0], b[1], b[2], b[3])))
        if kind != "text":
            self.values.append(self.lines[-1])
        return b[2]

    def centered(self, y: int, text: str, font: ImageFont.FreeTypeFont | None = None) -> None:
        f = font or self.font
        w = self.draw.textlength(text, font=f)
        self.put(int((self.img.width - w) / 2), y, text, font=f)


def render_page(seed: int, dpi: int = 200, degraded: bool = True,
                font_path: Path | None = None) -> Page:
    """One synthetic form page; layout, content and degradation follow from the seed."""
    r = random.Random(seed)
    fonts = available_fonts()
    fp = font_path or fonts[seed % len(fonts)]
    W, H = int(8.27 * dpi), int(11.69 * dpi)
    bg = 255
    img = Image.new("L", (W, H), bg)
    pt = r.choice([11, 12, 13])
    px = int(round(pt * dpi / 72))
    font = ImageFont.truetype(str(fp), px)
    bold = ImageFont.truetype(str(fp), int(px * 1.15))
    wr = _Writer(img, font, ink=r.randint(0, 40))
    m = int(0.8 * dpi)
    lh = int(px * 1.9)
    y = int(0.6 * dpi)
    wr.put(m, y, "BẢO HIỂM XÃ HỘI VIỆT NAM")
    wr.put(int(W * 0.62), y, "Mẫu TK1-TS")
    y += lh
    wr.centered(y, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", bold)
    y += lh
    wr.centered(y, "Độc lập - Tự do - Hạnh phúc")
    y += int(lh * 1.5)
    wr.centered(y, "TỜ KHAI THAM GIA, ĐIỀU CHỈNH THÔNG TIN BHXH, BHYT", bold)
    y += int(lh * 1.5)
    layout = seed % 3
    val_x = int(W * 0.45)
    name = _name(r)
    rows: list[tuple[str, str, str]] = [
        ("[01]. Họ và tên (viết chữ in hoa):", name, "name"),
        ("[02]. Ngày, tháng, năm sinh:", _date(r), "date"),
        ("[03]. Giới tính:", r.choice(["Nam", "Nữ"]), "text"),
        ("[04]. Quốc tịch:", "Việt Nam", "text"),
        ("[05]. Dân tộc:", r.choice(ETHNIC), "text"),
        ("[06]. Số CCCD:", _digits(r, 12), "id"),
        ("[07]. Mã số BHXH:", _digits(r, 10), "id"),
        ("[08]. Điện thoại:", "0" + _digits(r, 9), "id"),
        ("[09]. Tỉnh/Thành phố:", r.choice(PROVINCES), "text"),
        ("[10]. Quận/Huyện:", r.choice(DISTRICTS), "text"),
        ("[11]. Xã/Phường:", r.choice(WARDS), "text"),
        ("[12]. Họ tên cha/mẹ:", _name(r), "name"),
        ("[13]. Ngày cấp:", _date(r), "date"),
    ]
    for label, value, kind in rows:
        if layout == 0:  # label and value in one run of text, like a filled-in line
            wr.put(m, y, f"{label} {value}")
            if kind != "text":
                wr.values.append(Field(value, kind, wr.lines[-1].box))
        else:
            wr.put(m, y, label)
            wr.put(val_x, y, value, kind=kind)
            if layout == 2:  # table rules around each row
                d = wr.draw
                d.line([m - 10, y - int(px * 0.45), W - m, y - int(px * 0.45)], fill=60, width=2)
                d.line([val_x - 15, y - int(px * 0.45), val_x - 15, y + int(px * 1.45)],
                       fill=60, width=2)
        y += lh
    y += lh // 2
    wr.put(m, y, "Tôi cam đoan những nội dung kê khai là đúng sự thật.")
    y += lh
    city = r.choice(PROVINCES)
    wr.put(int(W * 0.45), y, f"{city}, ngày {r.randint(1, 28)} tháng {r.randint(1, 12)} năm 2024")
    y += lh
    wr.put(int(W * 0.55), y, "Người kê khai")
    y += int(lh * 2.5)
    signer = _name(r)
    wr.put(int(W * 0.55), y, signer, kind="name")
    if degraded:
        img = _degrade(img, r)
    return Page(img, tuple(wr.lines), tuple(wr.values), dpi, fp.name, degraded)


def _degrade(img: Image.Image, r: random.Random) -> Image.Image:
    d = ImageDraw.Draw(img)
    W, H = img.size
    # a pale stamp near the signature
    cx, cy, rad = int(W * 0.35), int(H * 0.85), int(W * 0.07)
    for k in range(2):
        d.ellipse([cx - rad + 6 * k, cy - rad + 6 * k, cx + rad - 6 * k, cy + rad - 6 * k],
                  outline=170, width=3)
    img = img.rotate(r.uniform(-1.2, 1.2), resample=Image.BILINEAR, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(r.uniform(0.4, 0.8)))
    a = np.asarray(img, np.float32)
    lo, hi = r.uniform(20, 60), r.uniform(215, 245)  # lower contrast: grey paper, grey ink
    a = lo + a * (hi - lo) / 255.0
    a += np.random.default_rng(r.randint(0, 2**31)).normal(0, r.uniform(3, 8), a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=r.randint(55, 80))
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")
