"""Synthetic BHXH form pages with known ground truth.

The demo scanner, the OCR benchmarks and the tests need pages that look like what an
officer feeds in (form TK1-TS, Vietnamese with full diacritics) but carry no real
citizen's data: real scans would be personal data under Law 91/2025/QH15. Every
page is generated from a seed, so a failing test or a benchmark number can be
reproduced exactly, and the truth (each text line with its box, and the field
values) comes with the image instead of being typed in by hand.
"""

from __future__ import annotations

import functools
import math
import random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

A4_MM = (210.0, 297.0)
MM_PER_INCH = 25.4

Box = tuple[int, int, int, int]

# Font roles map to candidate file names, best first. Liberation Serif has the
# metrics of Times New Roman, the face Vietnamese administrative forms are set in
# (Decree 30/2020, Annex I); the others are fall-backs that also cover Vietnamese.
_FONT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "serif": ("LiberationSerif-Regular.ttf", "DejaVuSerif.ttf", "FreeSerif.ttf",
              "NotoSerif-Regular.ttf"),
    "serif-bold": ("LiberationSerif-Bold.ttf", "DejaVuSerif-Bold.ttf", "FreeSerifBold.ttf",
                   "NotoSerif-Bold.ttf"),
    "serif-italic": ("LiberationSerif-Italic.ttf", "DejaVuSerif-Italic.ttf",
                     "FreeSerifItalic.ttf", "NotoSerif-Italic.ttf"),
    "sans": ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf",
             "NotoSans-Regular.ttf"),
}
_FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/liberation2",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/freefont",
    "/usr/share/fonts/truetype/noto",
)
_FONT_ROOTS: tuple[str, ...] = ("/usr/share/fonts", "/usr/local/share/fonts")


@dataclass(frozen=True)
class TruthLine:
    """One run of text as drawn: what an OCR detector should find and read.

    `box` is (left, top, right, bottom) in pixels of the returned image, already
    following any rotation applied by `degrade`.
    """

    text: str
    box: Box


@dataclass(frozen=True)
class SyntheticPage:
    """A rendered page and everything needed to score a reader against it."""

    image: Image.Image
    lines: tuple[TruthLine, ...]
    fields: dict[str, str]
    seed: int
    dpi: int
    skew_degrees: float = 0.0


# --- fonts --------------------------------------------------------------------------


@functools.cache
def find_font(role: str) -> Path:
    """Path of a TrueType font with Vietnamese glyphs for `role`.

    Looked up on disk rather than hard-coded because Debian moved Liberation to
    `liberation2` and a Pi image may only carry one of the families.
    """
    names = _FONT_CANDIDATES[role]
    for name in names:
        for folder in _FONT_DIRS:
            path = Path(folder) / name
            if path.is_file():
                return path
    for name in names:
        for root in _FONT_ROOTS:
            found = next(Path(root).rglob(name), None) if Path(root).is_dir() else None
            if found is not None:
                return found
    raise FileNotFoundError(
        f"no font for {role!r} (tried {', '.join(names)}); install fonts-liberation2 "
        "or fonts-dejavu-core"
    )


@functools.lru_cache(maxsize=64)
def _font(role: str, size_px: int) -> ImageFont.FreeTypeFont:
    # Loading a face costs more than drawing a page's worth of text: keep them.
    return ImageFont.truetype(str(find_font(role)), size_px)


# --- sample data ----------------------------------------------------------------------
# Invented combinations of common Vietnamese names and real place names; any match
# with a living person is chance. Every string is NFC, as the form would be typed.

_SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ",
             "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trương")
_MIDDLE_MALE = ("Văn", "Hữu", "Đức", "Minh", "Quốc", "Thành", "Công", "Xuân", "Gia")
_MIDDLE_FEMALE = ("Thị", "Ngọc", "Thu", "Thanh", "Kim", "Bích", "Diệu", "Phương", "Mỹ")
_GIVEN_MALE = ("An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hoàng", "Hùng",
               "Khánh", "Long", "Nam", "Phúc", "Quân", "Sơn", "Thắng", "Tuấn", "Việt")
_GIVEN_FEMALE = ("Anh", "Châu", "Dung", "Giang", "Hà", "Hằng", "Hương", "Lan", "Linh",
                 "Mai", "Ngân", "Nhung", "Oanh", "Phượng", "Quyên", "Thảo", "Trang", "Yến")
_ETHNICITIES = ("Kinh",) * 12 + ("Tày", "Thái", "Mường", "Khơ-me", "Hoa", "Nùng", "Mông")

# (CCCD province code, province, ((district, (ward, ...)), ...), streets)
_PLACES: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]], ...] = (
    ("001", "Thành phố Hà Nội",
     (("Quận Ba Đình", ("Phường Kim Mã", "Phường Ngọc Hà", "Phường Liễu Giai")),
      ("Quận Đống Đa", ("Phường Láng Hạ", "Phường Ô Chợ Dừa", "Phường Khâm Thiên")),
      ("Huyện Đông Anh", ("Xã Uy Nỗ", "Xã Cổ Loa", "Thị trấn Đông Anh"))),
     ("phố Kim Mã", "đường Láng", "phố Đội Cấn", "đường Giải Phóng")),
    ("079", "Thành phố Hồ Chí Minh",
     (("Quận 1", ("Phường Bến Nghé", "Phường Đa Kao", "Phường Tân Định")),
      ("Quận Gò Vấp", ("Phường 5", "Phường 10", "Phường 17")),
      ("Huyện Củ Chi", ("Xã Tân Thông Hội", "Xã Phước Vĩnh An", "Thị trấn Củ Chi"))),
     ("đường Nguyễn Trãi", "đường Lê Lợi", "đường Quang Trung", "đường Cách Mạng Tháng Tám")),
    ("048", "Thành phố Đà Nẵng",
     (("Quận Hải Châu", ("Phường Thạch Thang", "Phường Hòa Cường Bắc")),
      ("Quận Sơn Trà", ("Phường An Hải Bắc", "Phường Mân Thái"))),
     ("đường Bạch Đằng", "đường Trần Phú", "đường Ngô Quyền")),
    ("031", "Thành phố Hải Phòng",
     (("Quận Lê Chân", ("Phường An Biên", "Phường Trại Cau")),
      ("Huyện Thủy Nguyên", ("Xã Lưu Kiếm", "Xã Phả Lễ"))),
     ("đường Lạch Tray", "phố Cầu Đất")),
    ("038", "Tỉnh Thanh Hóa",
     (("Thành phố Thanh Hóa", ("Phường Điện Biên", "Phường Đông Thọ")),
      ("Huyện Hoằng Hóa", ("Xã Hoằng Đạo", "Xã Hoằng Phượng"))),
     ("đường Lê Hoàn", "đại lộ Lê Lợi")),
    ("040", "Tỉnh Nghệ An",
     (("Thành phố Vinh", ("Phường Hưng Bình", "Phường Trường Thi")),
      ("Huyện Nghi Lộc", ("Xã Nghi Phong", "Xã Nghi Thịnh"))),
     ("đường Nguyễn Du", "đường Phan Bội Châu")),
    ("092", "Thành phố Cần Thơ",
     (("Quận Ninh Kiều", ("Phường Tân An", "Phường Xuân Khánh")),
      ("Huyện Phong Điền", ("Xã Nhơn Ái", "Thị trấn Phong Điền"))),
     ("đường Hòa Bình", "đường 30 Tháng 4")),
    ("066", "Tỉnh Đắk Lắk",
     (("Thành phố Buôn Ma Thuột", ("Phường Tân Lợi", "Phường Ea Tam")),
      ("Huyện Krông Pắc", ("Xã Ea Kly", "Thị trấn Phước An"))),
     ("đường Phan Chu Trinh", "đường Y Jút")),
)
_MOBILE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "056", "058",
                    "070", "076", "077", "078", "079", "081", "083", "084", "085", "086",
                    "088", "089", "090", "091", "093", "094", "096", "097", "098")
_MAIL_HOSTS = ("gmail.com", "yahoo.com.vn", "outlook.com")


def _ascii_fold(text: str) -> str:
    """Vietnamese without tone marks, as people write it in e-mail addresses."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def sample_fields(rng: random.Random) -> dict[str, str]:
    """One invented participant, internally consistent (CCCD digits match sex,
    century and province of the address, as Decree 137/2015 lays them out)."""
    female = rng.random() < 0.5
    surname = rng.choice(_SURNAMES)
    middle = rng.choice(_MIDDLE_FEMALE if female else _MIDDLE_MALE)
    given = rng.choice(_GIVEN_FEMALE if female else _GIVEN_MALE)
    name = f"{surname} {middle} {given}"
    year = rng.randint(1960, 2006)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    code, province, districts, streets = rng.choice(_PLACES)
    district, wards = rng.choice(districts)
    ward = rng.choice(wards)
    century_sex = (0 if year < 2000 else 2) + (1 if female else 0)
    cccd = f"{code}{century_sex}{year % 100:02d}{rng.randint(0, 999999):06d}"
    bhxh = f"{int(code) % 100:02d}{rng.randint(0, 99_999_999):08d}"
    phone = rng.choice(_MOBILE_PREFIXES) + f"{rng.randint(0, 9_999_999):07d}"
    mail_user = _ascii_fold(given + surname).lower() + str(year % 100)
    house = f"Số {rng.randint(1, 199)}, {rng.choice(streets)}"
    birth_code, birth_province, birth_districts, _ = rng.choice(_PLACES)
    birth_district, birth_wards = rng.choice(birth_districts)
    fields = {
        "full_name": name.upper(),
        "gender": "Nữ" if female else "Nam",
        "birth_date": f"{day:02d}/{month:02d}/{year}",
        "nationality": "Việt Nam",
        "ethnicity": rng.choice(_ETHNICITIES),
        "cccd": cccd,
        "phone": phone,
        "email": f"{mail_user}@{rng.choice(_MAIL_HOSTS)}",
        "birth_place": f"{rng.choice(birth_wards)}, {birth_district}, {birth_province}",
        "house": house,
        "ward": ward,
        "district": district,
        "province": province,
        "address": f"{house}, {ward}, {district}, {province}",
        "bhxh_number": bhxh,
    }
    return {key: unicodedata.normalize("NFC", value) for key, value in fields.items()}


# --- layout ---------------------------------------------------------------------------


class _Canvas:
    """Draws text in millimetre coordinates and records what it drew."""

    def __init__(self, dpi: int, paper: tuple[int, int, int]) -> None:
        self.dpi = dpi
        size = (round(A4_MM[0] / MM_PER_INCH * dpi), round(A4_MM[1] / MM_PER_INCH * dpi))
        self.image = Image.new("RGB", size, paper)
        self.draw = ImageDraw.Draw(self.image)
        self.lines: list[TruthLine] = []

    def px(self, mm: float) -> int:
        return round(mm / MM_PER_INCH * self.dpi)

    def font(self, role: str, points: float) -> ImageFont.FreeTypeFont:
        return _font(role, max(6, round(points / 72 * self.dpi)))

    def text(self, x_mm: float, y_mm: float, text: str, *, role: str = "serif",
             points: float = 12, ink: tuple[int, int, int] = (20, 20, 20),
             anchor: str = "ls") -> Box:
        """Text with its baseline at y_mm; `anchor` as in Pillow ("ms" centres it)."""
        text = unicodedata.normalize("NFC", text)
        font = self.font(role, points)
        xy = (self.px(x_mm), self.px(y_mm))
        self.draw.text(xy, text, font=font, fill=ink, anchor=anchor)
        left, top, right, bottom = self.draw.textbbox(xy, text, font=font, anchor=anchor)
        box = (int(left), int(top), int(math.ceil(right)), int(math.ceil(bottom)))
        if text.strip():
            self.lines.append(TruthLine(text, box))
        return box

    def dotted(self, x0_mm: float, x1_mm: float, y_mm: float) -> None:
        """The dotted writing line under a value, as printed on blank forms."""
        y = self.px(y_mm) + self.px(0.8)
        step = max(3, self.px(1.0))
        radius = max(1, self.dpi // 150)
        for x in range(self.px(x0_mm), self.px(x1_mm), step):
            self.draw.ellipse((x, y, x + radius, y + radius), fill=(90, 90, 90))

    def line(self, x0_mm: float, x1_mm: float, y_mm: float, width: int = 1) -> None:
        y = self.px(y_mm)
        self.draw.line((self.px(x0_mm), y, self.px(x1_mm), y), fill=(20, 20, 20),
                       width=max(1, width * self.dpi // 200))

    def digit_boxes(self, x_mm: float, y_mm: float, digits: str, *, cell_mm: float = 6.0,
                    points: float = 12, ink: tuple[int, int, int]) -> None:
        """One digit per printed cell, the way BHXH forms ask for codes; the truth
        line covers the whole number so a reader is scored on the number."""
        top = self.px(y_mm - cell_mm + 1.5)
        bottom = self.px(y_mm + 1.5)
        for i, _ in enumerate(digits):
            left = self.px(x_mm + i * cell_mm)
            self.draw.rectangle((left, top, left + self.px(cell_mm), bottom),
                                outline=(40, 40, 40), width=max(1, self.dpi // 200))
        font = self.font("sans", points)
        boxes: list[tuple[float, float, float, float]] = []
        for i, digit in enumerate(digits):
            xy = (self.px(x_mm + i * cell_mm + cell_mm / 2), self.px(y_mm))
            self.draw.text(xy, digit, font=font, fill=ink, anchor="ms")
            boxes.append(self.draw.textbbox(xy, digit, font=font, anchor="ms"))
        box = (int(min(b[0] for b in boxes)), int(min(b[1] for b in boxes)),
               int(math.ceil(max(b[2] for b in boxes))), int(math.ceil(max(b[3] for b in boxes))))
        self.lines.append(TruthLine(digits, box))


_INK_BLUE = (25, 45, 140)
_INK_BLACK = (25, 25, 30)


def _layout(canvas: _Canvas, fields: dict[str, str], rng: random.Random) -> None:
    """Form TK1-TS (Decision 490/QĐ-BHXH of 2023), part I, from public templates."""
    ink = _INK_BLUE if rng.random() < 0.7 else _INK_BLACK
    value_role = rng.choice(("serif", "sans", "serif-italic"))
    c = canvas
    c.text(195, 14, "Mẫu TK1-TS", role="serif-bold", points=11, anchor="rs")
    c.text(195, 19, "(Ban hành kèm theo QĐ số 490/QĐ-BHXH ngày 28/3/2023",
           role="serif-italic", points=9, anchor="rs")
    c.text(195, 23, "của BHXH Việt Nam)", role="serif-italic", points=9, anchor="rs")
    c.text(105, 33, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", role="serif-bold", points=13,
           anchor="ms")
    box = c.text(105, 39.5, "Độc lập - Tự do - Hạnh phúc", role="serif-bold", points=13,
                 anchor="ms")
    c.draw.line((box[0], box[3] + c.px(1), box[2], box[3] + c.px(1)), fill=(20, 20, 20),
                width=max(1, c.dpi // 150))
    c.text(105, 54, "TỜ KHAI", role="serif-bold", points=15, anchor="ms")
    c.text(105, 61, "THAM GIA, ĐIỀU CHỈNH THÔNG TIN BẢO HIỂM XÃ HỘI, BẢO HIỂM Y TẾ",
           role="serif-bold", points=13, anchor="ms")

    c.text(20, 74, "I. Áp dụng đối với người tham gia tra cứu không thấy mã số BHXH",
           role="serif-bold", points=12)
    c.text(20, 80, "do cơ quan BHXH cấp", role="serif-bold", points=12)

    x_label = 20
    y = 90.0
    gap = 8.6

    def row(label: str, value: str, *, value_x: float | None = None,
            end_x: float = 190) -> None:
        nonlocal y
        label_box = c.text(x_label, y, label, points=12)
        start = (label_box[2] / c.dpi * MM_PER_INCH + 3) if value_x is None else value_x
        c.dotted(start - 1, end_x, y)
        c.text(start, y, value, role=value_role, points=12.5, ink=ink)
        y += gap

    row("[01]. Họ và tên (viết chữ in hoa):", fields["full_name"])
    # [02] and [03] share a line on the printed form.
    label_box = c.text(x_label, y, "[02]. Giới tính:", points=12)
    start = label_box[2] / c.dpi * MM_PER_INCH + 3
    c.dotted(start - 1, 75, y)
    c.text(start, y, fields["gender"], role=value_role, points=12.5, ink=ink)
    label_box = c.text(80, y, "[03]. Ngày, tháng, năm sinh:", points=12)
    start = label_box[2] / c.dpi * MM_PER_INCH + 3
    c.dotted(start - 1, 190, y)
    c.text(start, y, fields["birth_date"], role=value_role, points=12.5, ink=ink)
    y += gap
    label_box = c.text(x_label, y, "[04]. Quốc tịch:", points=12)
    start = label_box[2] / c.dpi * MM_PER_INCH + 3
    c.dotted(start - 1, 100, y)
    c.text(start, y, fields["nationality"], role=value_role, points=12.5, ink=ink)
    label_box = c.text(105, y, "[05]. Dân tộc:", points=12)
    start = label_box[2] / c.dpi * MM_PER_INCH + 3
    c.dotted(start - 1, 190, y)
    c.text(start, y, fields["ethnicity"], role=value_role, points=12.5, ink=ink)
    y += gap
    c.text(x_label, y, "[06]. Số CCCD/ĐDCN/Hộ chiếu:", points=12)
    c.digit_boxes(90, y, fields["cccd"], ink=ink)
    y += gap + 1
    row("[07]. Điện thoại liên hệ:", fields["phone"], end_x=110)
    y -= gap
    label_box = c.text(115, y, "[08]. Email:", points=12)
    start = label_box[2] / c.dpi * MM_PER_INCH + 2
    c.dotted(start - 1, 190, y)
    c.text(start, y, fields["email"], role="sans", points=10, ink=ink)
    y += gap
    c.text(x_label, y, "[09]. Nơi đăng ký khai sinh:", points=12)
    y += gap * 0.85
    c.dotted(26, 190, y)
    c.text(26, y, fields["birth_place"], role=value_role, points=12.5, ink=ink)
    y += gap
    row("[10]. Họ tên cha/mẹ/giám hộ (đối với trẻ em dưới 6 tuổi):", "")
    c.text(x_label, y, "[11]. Đăng ký nhận kết quả giải quyết thủ tục hành chính:",
           points=12)
    y += gap * 0.85
    c.text(26, y, "☐ Trực tiếp   ☒ Qua bưu điện   ☐ Qua giao dịch điện tử", role="sans",
           points=10.5)
    y += gap
    c.text(x_label, y, "Địa chỉ nhận kết quả:", role="serif-bold", points=12)
    y += gap
    row("[12]. Số nhà, đường/phố, thôn/xóm:", fields["house"])
    row("[13]. Xã/phường/thị trấn:", fields["ward"])
    row("[14]. Huyện/quận/thị xã/thành phố thuộc tỉnh:", fields["district"])
    row("[15]. Tỉnh/thành phố:", fields["province"])
    box = c.text(x_label, y, "[16]. Kê khai Phụ lục Thành viên hộ gia đình:", points=12)
    side = c.px(3.5)
    c.draw.rectangle((box[2] + c.px(3), box[3] - side, box[2] + c.px(3) + side, box[3]),
                     outline=(40, 40, 40), width=max(1, c.dpi // 200))
    y += gap * 1.4

    c.text(20, y, "II. Áp dụng đối với người tham gia đã được cấp mã số BHXH",
           role="serif-bold", points=12)
    y += gap
    c.text(x_label, y, "[01]. Mã số BHXH:", points=12)
    c.digit_boxes(70, y, fields["bhxh_number"], ink=ink)
    y += gap * 1.6

    signed = fields.get("signed_date", "")
    c.text(150, y, f"{fields['province'].split(' ', 1)[-1].replace('phố ', '')}, {signed}",
           role="serif-italic", points=12, anchor="ms")
    y += gap * 0.8
    c.text(150, y, "Người kê khai", role="serif-bold", points=12, anchor="ms")
    y += gap * 0.7
    c.text(150, y, "(Ký, ghi rõ họ tên)", role="serif-italic", points=11, anchor="ms")
    # A signature scrawl: pen strokes, not text, so it carries no truth line.
    sx, sy = c.px(135), c.px(y + 10)
    points = [(sx + c.px(i * 2.5), sy + c.px(rng.uniform(-3, 3))) for i in range(12)]
    c.draw.line(points, fill=ink, width=max(2, c.dpi // 80), joint="curve")
    y += gap * 2.8
    c.text(150, y, fields["full_name"].title(), role=value_role, points=12.5, ink=ink,
           anchor="ms")


# --- degradation ----------------------------------------------------------------------


def _rotate_box(box: Box, angle_deg: float, centre: tuple[float, float],
                size: tuple[int, int]) -> Box:
    # Pillow rotates counter-clockwise for positive angles in image coordinates
    # (y down), so a point moves by the inverse of the usual maths rotation.
    a = math.radians(angle_deg)
    cos_a, sin_a = math.cos(a), math.sin(a)
    cx, cy = centre
    xs: list[float] = []
    ys: list[float] = []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
        dx, dy = x - cx, y - cy
        xs.append(cx + dx * cos_a + dy * sin_a)
        ys.append(cy - dx * sin_a + dy * cos_a)
    return (max(0, int(min(xs))), max(0, int(min(ys))),
            min(size[0], int(math.ceil(max(xs)))), min(size[1], int(math.ceil(max(ys)))))


def _degrade(image: Image.Image, lines: Iterable[TruthLine], rng: random.Random,
             paper: tuple[int, int, int]) -> tuple[Image.Image, tuple[TruthLine, ...], float]:
    """What a cheap office scanner does to a page: a small skew (bilinear resampling
    also softens the strokes), uneven light and sensor noise. Done with Pillow and
    8-bit arrays so an A4 page at 200 dpi stays under 0.3 s even on a Pi."""
    angle = rng.uniform(-1.5, 1.5)
    size = image.size
    centre = (size[0] / 2, size[1] / 2)
    rotated = image.rotate(angle, resample=Image.Resampling.BILINEAR, center=centre,
                           fillcolor=paper)
    moved = tuple(TruthLine(line.text, _rotate_box(line.box, angle, centre, size))
                  for line in lines)
    np_rng = np.random.default_rng(rng.getrandbits(32))
    width, height = size
    # Values around 128 so ImageChops.add(..., offset=-128) can lighten and darken.
    noise = Image.fromarray(np_rng.integers(120, 137, (height, width), dtype=np.uint8), "L")
    # Shading varies slowly across the page: corner values blown up bilinearly.
    corners = Image.new("L", (2, 2))
    corners.putdata([128 + rng.randint(-14, 14) for _ in range(4)])
    shade = corners.resize(size, Image.Resampling.BILINEAR)
    layer = ImageChops.add(noise, shade, 1.0, -128)
    out = ImageChops.add(rotated, Image.merge("RGB", (layer, layer, layer)), 1.0, -128)
    return out, moved, angle


# --- entry point ----------------------------------------------------------------------


def render_form_page(seed: int, dpi: int = 200, degrade: bool = False) -> SyntheticPage:
    """A TK1-TS page filled in for an invented participant, deterministic per seed.

    `degrade` adds scanner artefacts (skew up to 1.5°, blur, shading, noise) for
    OCR robustness checks; the truth boxes follow the skew.
    """
    if dpi < 50 or dpi > 1200:
        raise ValueError(f"dpi out of range: {dpi}")
    rng = random.Random(seed)
    fields = sample_fields(rng)
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2023, 2026)
    signed = f"ngày {day:02d} tháng {month:02d} năm {year}"
    paper = (255, 255, 255) if not degrade else (
        rng.randint(238, 250), rng.randint(238, 250), rng.randint(232, 246))
    canvas = _Canvas(dpi, paper)
    _layout(canvas, {**fields, "signed_date": signed}, rng)
    image: Image.Image = canvas.image
    lines: tuple[TruthLine, ...] = tuple(canvas.lines)
    angle = 0.0
    if degrade:
        image, lines, angle = _degrade(image, lines, rng, paper)
    image.info["dpi"] = (dpi, dpi)
    return SyntheticPage(image=image, lines=lines, fields=fields, seed=seed, dpi=dpi,
                         skew_degrees=angle)


def render_batch(seeds: Sequence[int], dpi: int = 200,
                 degrade: bool = False) -> list[SyntheticPage]:
    """Several pages at once, for benchmarks that want a fixed corpus."""
    return [render_form_page(seed, dpi=dpi, degrade=degrade) for seed in seeds]
