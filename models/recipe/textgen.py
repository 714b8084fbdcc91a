"""Synthetic Vietnamese text lines of the kinds a BHXH form carries.

The mix is deliberately skewed toward the cases the feasibility run got wrong:
upper-case names with stacked accents, hook/tilde letters and long digit
strings. Every symbol of the charset also appears in random strings so no
output class is left untrained.
"""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

from appliance.bench.metrics import strip_accents
from models.recipe.charset import DIGITS, charset, hard_letters
from models.recipe.vn_data import (
    DISTRICTS,
    FORM_LABELS,
    GIVEN,
    MIDDLE,
    PROVINCES_OLD,
    STREETS,
    SURNAMES,
    WARD_PARTS,
)

# look-alike marks the first recognizer confused on real print (and their partners)
LOOKALIKE = "ểễổỗềèủùỉìĩíẻẽỏõởỡửữỷỹẳẵẩẫ"
# letters with a mark stacked over a circumflex/breve, or a dot below one: on capitals
# the upper mark is what gets lost ("HỘI" -> "HỌI")
STACKED = "ấầẩẫậắằẳẵặếềểễệốồổỗộ"
REAL_SHARE = 0.5  # share of real_line() in TextSource(real=True)
HEADINGS = (
    "BẢO HIỂM XÃ HỘI VIỆT NAM", "BẢO HIỂM XÃ HỘI", "BẢO HIỂM XÃ HỘI TỈNH {p}",
    "BẢO HIỂM XÃ HỘI THÀNH PHỐ {p}", "BẢO HIỂM XÃ HỘI HUYỆN", "BẢO HIỂM XÃ HỘI QUẬN",
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "QUYẾT ĐỊNH", "THÔNG BÁO", "GIẤY CHỨNG NHẬN",
    "GIẤY XÁC NHẬN", "BIÊN BẢN", "TỜ KHAI", "ỦY BAN NHÂN DÂN", "ỦY BAN NHÂN DÂN TỈNH {p}",
    "HỘI ĐỒNG NHÂN DÂN", "GIÁM ĐỐC", "PHÓ GIÁM ĐỐC", "KT. GIÁM ĐỐC", "TM. ỦY BAN NHÂN DÂN",
    "CHỦ TỊCH", "PHÓ CHỦ TỊCH", "NGƯỜI NHẬN", "NGƯỜI LẬP BIỂU", "NƠI NHẬN", "NHẬN",
    "XÁC NHẬN CỦA ĐƠN VỊ", "ĐƠN ĐỀ NGHỊ", "SỔ BẢO HIỂM XÃ HỘI", "THẺ BẢO HIỂM Y TẾ",
    "DANH SÁCH", "BỘ LAO ĐỘNG - THƯƠNG BINH VÀ XÃ HỘI", "BỘ Y TẾ", "BỘ TÀI CHÍNH",
    "CHÍNH PHỦ", "NGHỊ ĐỊNH", "THÔNG TƯ", "CÔNG VĂN", "KẾ HOẠCH", "BÁO CÁO",
    "HỢP ĐỒNG LAO ĐỘNG", "HỘI NGHỊ", "ĐỘC LẬP", "VĂN PHÒNG", "PHÒNG KẾ HOẠCH - TÀI CHÍNH",
    "PHÒNG THU", "PHÒNG CHẾ ĐỘ BẢO HIỂM XÃ HỘI", "SỞ LAO ĐỘNG - THƯƠNG BINH VÀ XÃ HỘI",
    "TRUNG TÂM Y TẾ", "BỆNH VIỆN ĐA KHOA", "CÔNG TY CỔ PHẦN", "CÔNG TY TNHH",
    "HỒ SƠ ĐỀ NGHỊ HƯỞNG CHẾ ĐỘ", "TỔNG HỢP", "KẾT LUẬN", "ĐIỀU CHỈNH", "CHẾ ĐỘ ỐM ĐAU",
    "THAI SẢN", "HƯU TRÍ", "TỬ TUẤT", "TAI NẠN LAO ĐỘNG", "BỆNH NGHỀ NGHIỆP",
)
ADMIN_PHRASES = (
    "Căn cứ Nghị định số {n}/{y}/NĐ-CP ngày {d}/{m}/{y} của Chính phủ",
    "Căn cứ Luật Bảo hiểm xã hội ngày {d} tháng {m} năm {y};",
    "Căn cứ Thông tư số {n}/{y}/TT-BLĐTBXH;", "Căn cứ Quyết định số {n}/QĐ-BHXH",
    "Theo đề nghị của Trưởng phòng {w},", "Điều {d}. {w}", "Khoản {d} Điều {m}",
    "Kính gửi: {w}", "V/v {w}", "Nơi nhận:", "- Như Điều {d};", "- Lưu: VT, {w}.",
    "Số: {n}/QĐ-BHXH", "Số: {n}/TB-BHXH", "Số: {n}/BHXH-{w}", "{p}, ngày {d} tháng {m} năm {y}",
    "Quyết định này có hiệu lực kể từ ngày ký.", "Ông (bà) có tên tại Điều {d}",
    "chịu trách nhiệm thi hành Quyết định này./.", "Mã số BHXH: {n}{y}",
    "Hiệu lực thẻ từ ngày {d}/{m}/{y}", "Nơi đăng ký khám bệnh, chữa bệnh ban đầu:",
    "Người hưởng: {w}", "Thời gian đóng BHXH: {d} năm {m} tháng", "Mức hưởng: {n}.000 đồng",
    "Xác nhận của cơ quan Bảo hiểm xã hội", "Đã ký", "(Ký, ghi rõ họ tên, đóng dấu)",
    "(Ký, ghi rõ họ tên)", "Trân trọng./.", "Ghi chú: {w}", "Tổng cộng: {n} người",
)

HUNSPELL_DIC = Path("/usr/share/hunspell/vi_VN.dic")


def load_words(path: Path = HUNSPELL_DIC) -> list[str]:
    """Syllables from hunspell-vi, affix flags stripped, NFC, charset-only."""
    allowed = set(charset())
    words: list[str] = []
    if not path.exists():
        return words
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="ignore").splitlines()):
        if i == 0 and line.strip().isdigit():
            continue
        w = unicodedata.normalize("NFC", line.split("/", 1)[0].strip())
        if w and all(c in allowed for c in w):
            words.append(w)
    return words


class TextSource:
    """Draws one line of text per call; seeded so shards reproduce."""

    def __init__(self, seed: int, real: bool = False) -> None:
        self.rng = random.Random(seed)
        self.real = real  # draw part of the lines from the real-print mix (real_line)
        self.words = load_words()
        hard = set(hard_letters())
        self.hard_words = [w for w in self.words if any(c in hard for c in w)]
        self.chars = charset()
        self.wards = self._wards()
        look = set(LOOKALIKE)
        self.lookalike_words = [w for w in self.words if any(c in look for c in w.lower())]
        stacked = set(STACKED)
        self.stacked_words = [w for w in self.words if any(c in stacked for c in w.lower())]

    def _wards(self) -> list[str]:
        parts = WARD_PARTS
        out = []
        for i in range(0, len(parts) - 1):
            out.append(parts[i] + " " + parts[i + 1])
        return out

    # -- pieces ---------------------------------------------------------
    def name(self) -> str:
        r = self.rng
        n_mid = r.choices([0, 1, 2], [0.15, 0.7, 0.15])[0]
        parts = [r.choice(SURNAMES)] + [r.choice(MIDDLE) for _ in range(n_mid)]
        parts.append(r.choice(GIVEN))
        if r.random() < 0.1:
            parts.append(r.choice(GIVEN))
        return " ".join(parts)

    def word(self) -> str:
        r = self.rng
        pool = self.hard_words if (self.hard_words and r.random() < 0.4) else self.words
        return r.choice(pool) if pool else r.choice(GIVEN)

    def date(self) -> str:
        r = self.rng
        d, m, y = r.randint(1, 31), r.randint(1, 12), r.randint(1930, 2030)
        style = r.randint(0, 7)
        if style == 0:
            return f"{d:02d}/{m:02d}/{y}"
        if style == 1:
            return f"{d}/{m}/{y}"
        if style == 2:
            return f"{d:02d}-{m:02d}-{y}"
        if style == 3:
            return f"ngày {d:02d} tháng {m:02d} năm {y}"
        if style == 4:
            return f"Ngày {d} tháng {m} năm {y}"
        if style == 5:
            return f"{r.choice(PROVINCES_OLD)}, ngày {d} tháng {m} năm {y}"
        if style == 6:
            return f"{m:02d}/{y}"
        return f"{d:02d}.{m:02d}.{y}"

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(DIGITS) for _ in range(n))

    def number(self) -> str:
        r = self.rng
        style = r.randint(0, 8)
        if style == 0:
            return self.digits(12)  # CCCD / personal ID
        if style == 1:
            return self.digits(10)  # BHXH code
        if style == 2:
            prefix = r.choice(["GD", "DN", "HC", "HT", "TE", "CN", "HS", "SV", "NO", "XK"])
            return f"{prefix}{r.randint(1, 5)}{self.digits(2)}{self.digits(10)}"
        if style == 3:
            return f"0{r.choice('38975')}{self.digits(1)} {self.digits(3)} {self.digits(3)}"
        if style == 4:
            return f"{r.randint(1, 99)}.{self.digits(3)}.000 đồng"
        if style == 5:
            return f"{r.randint(1, 9999)}/QĐ-BHXH"
        if style == 6:
            return self.digits(r.randint(4, 16))
        if style == 7:
            return " ".join(self.digits(r.randint(2, 4)) for _ in range(r.randint(2, 5)))
        return f"{self.digits(3)} {self.digits(3)} {self.digits(4)}"

    def place(self) -> str:
        r = self.rng
        style = r.randint(0, 5)
        if style == 0:
            return f"{r.choice(['Tỉnh', 'Thành phố', 'TP.'])} {r.choice(PROVINCES_OLD)}"
        if style == 1:
            kind = r.choice(["Quận", "Huyện", "Thị xã", "Thành phố"])
            return f"{kind} {r.choice(DISTRICTS)}"
        if style == 2:
            return f"{r.choice(['Phường', 'Xã', 'Thị trấn'])} {r.choice(self.wards)}"
        if style == 3:
            return f"Phường {r.randint(1, 20)}, Quận {r.randint(1, 12)}"
        if style == 4:
            return (
                f"Số {r.randint(1, 999)} {r.choice(['', 'Đường ', 'Phố '])}"
                f"{r.choice(STREETS)}, {r.choice(DISTRICTS)}"
            )
        return f"{r.choice(DISTRICTS)}, {r.choice(PROVINCES_OLD)}"

    def email(self) -> str:
        """Forms ask for an e-mail: unaccented name parts, digits, dots and domains."""
        r = self.rng
        parts = [strip_accents(w).lower() for w in self.name().split()]  # as addresses are
        r.shuffle(parts)
        local = r.choice(["", ".", "_"]).join(parts[: r.randint(1, 3)])
        if r.random() < 0.6:
            local += str(r.randint(1, 99) if r.random() < 0.5 else r.randint(1950, 2010))
        domain = r.choice(["gmail.com", "yahoo.com", "yahoo.com.vn", "outlook.com",
                           "baohiemxahoi.gov.vn", "vnpt.vn", "fpt.vn", "hotmail.com"])
        return f"{local}@{domain}"

    def random_chars(self) -> str:
        r = self.rng
        n = r.randint(3, 20)
        s = "".join(r.choice(self.chars) for _ in range(n))
        return " ".join(s.split())

    # -- lines ----------------------------------------------------------
    def line(self) -> str:
        r = self.rng
        if self.real and r.random() < REAL_SHARE:
            return self._clean(self.real_line())
        kind = r.choices(
            ["upname", "name", "label", "labelval", "date", "number", "place", "words",
             "upwords", "random", "mixed", "email"],
            [0.17, 0.07, 0.08, 0.14, 0.09, 0.11, 0.09, 0.12, 0.05, 0.03, 0.05, 0.03],
        )[0]
        if kind == "upname":
            s = self.name().upper()
        elif kind == "name":
            s = self.name()
        elif kind == "label":
            s = r.choice(FORM_LABELS)
        elif kind == "labelval":
            label = r.choice(FORM_LABELS)
            if len(label) > 34:
                label = label[:34].rsplit(" ", 1)[0]
            val = r.choice([self.name().upper(), self.date(), self.number(), self.place()])
            s = f"{label} {val}"
        elif kind == "date":
            s = self.date()
        elif kind == "number":
            s = self.number()
        elif kind == "place":
            s = self.place()
            if r.random() < 0.3:
                s = s.upper()
        elif kind == "words":
            s = " ".join(self.word() for _ in range(r.randint(1, 7)))
            if r.random() < 0.5:
                s = s[:1].upper() + s[1:]
            if r.random() < 0.3:
                s += r.choice([".", ",", ":", ";", "?", "!", "…"])
        elif kind == "upwords":
            s = " ".join(self.word() for _ in range(r.randint(1, 5))).upper()
        elif kind == "email":
            s = self.email()
            if r.random() < 0.4:
                s = f"{r.choice(['Email:', 'E-mail:', '[08]. Email:'])} {s}"
        elif kind == "random":
            s = self.random_chars()
        else:
            s = f"{self.name()} - {self.date()} - {self.number()}"
        return self._clean(s)

    @staticmethod
    def _clean(s: str) -> str:
        s = unicodedata.normalize("NFC", " ".join(s.split()))
        if len(s) > 56:
            s = s[:56].rstrip()
        return s or "0"

    # -- the real-print mix (TextSource(seed, real=True)) ---------------
    def _pick(self, pool: list[str]) -> str:
        return self.rng.choice(pool) if pool else self.word()

    def real_line(self) -> str:
        """Administrative headings, stacked capitals and look-alike marks, weighted up.

        These are where the first recognizer misread real letters and decisions:
        ể/ễ, ổ/ỗ, ề/è, ủ/ù, ỉ/i, and "HỘI"/"NHẬN" losing the upper mark.
        """
        r = self.rng
        kind = r.choices(["heading", "upstacked", "lookalike", "admin", "motto", "punct"],
                         [0.25, 0.2, 0.22, 0.18, 0.05, 0.10])[0]
        if kind == "heading":
            s = r.choice(HEADINGS)
            if "{p}" in s:
                s = s.format(p=r.choice(PROVINCES_OLD).upper())
            if r.random() < 0.2:
                s = f"{s} {self._pick(self.stacked_words).upper()}"
        elif kind == "upstacked":
            n = r.randint(1, 5)
            s = " ".join(self._pick(self.stacked_words) if r.random() < 0.7 else self.word()
                         for _ in range(n)).upper()
        elif kind == "lookalike":
            n = r.randint(1, 7)
            s = " ".join(self._pick(self.lookalike_words) if r.random() < 0.6 else self.word()
                         for _ in range(n))
            if r.random() < 0.4:
                s = s[:1].upper() + s[1:]
            elif r.random() < 0.15:
                s = s.upper()
        elif kind == "admin":
            s = r.choice(ADMIN_PHRASES)
            s = s.format(n=r.randint(1, 999), y=r.randint(2000, 2030), d=r.randint(1, 31),
                         m=r.randint(1, 12), p=r.choice(PROVINCES_OLD),
                         w=" ".join(self.word() for _ in range(r.randint(1, 4))))
        elif kind == "motto":
            s = r.choice(["Độc lập - Tự do - Hạnh phúc", "Độc lập – Tự do – Hạnh phúc",
                          "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                          "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM"])
        else:  # ordinary text with its real punctuation, so specks are not read as commas
            words = [self.word() for _ in range(r.randint(3, 9))]
            for i in range(len(words) - 1):
                if r.random() < 0.15:
                    words[i] += r.choice([",", ",", ".", ";", ":"])
            s = " ".join(words)
            s = s[:1].upper() + s[1:]
        return s
