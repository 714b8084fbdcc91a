"""Validators: candidate text in, a verdict out (valid, uncertain or a problem).

A wrong ID number that looks right is worse than an empty field: the officer signs
what the screen shows. So every kind of value is checked against what the law and
the number plans allow, and what fails is a problem with a reason, never a guess.
"Uncertain" is for values that pass but look odd (a name that is not upper case, a
syllable Vietnamese does not have, a phone prefix no operator uses): kept, but shown
for a look against the paper.

Each parser also says which characters of the candidate the value came from, so
the field's box on the page covers the value and not its label.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date

VALID = "valid"
UNCERTAIN = "uncertain"
PROBLEM = "problem"


@dataclass(frozen=True)
class Verdict:
    """What a candidate text yields for one kind of field.

    `span` is the (start, end) of the value in the candidate text; `flags` are
    stable codes (for machines and translations), `reason` an English sentence.
    """

    status: str
    value: str | None
    span: tuple[int, int]
    flags: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class Formats:
    """Number plans the validators check against; they come from the catalogue."""

    cccd_provinces: Collection[str]
    mobile_prefixes: Collection[str]
    surnames: Collection[str] = ()  # upper case; empty: family names are not checked


# --- digits ---------------------------------------------------------------------------

# Digits in printed boxes come back spaced out or with the box rules read as "|".
_DIGIT_RUN = re.compile(r"\d(?:[\d\s|.\-]*\d)?")
_CARD_RE = re.compile(r"(?<![A-Za-z])([A-Z]{2})\s*((?:\d\s*){12}\d)(?!\d)")


def _ascii_digits(text: str) -> str:
    """The decimal digits of `text`, as ASCII. `\\d` is any Unicode digit: a number
    typed on a full-width or Arabic-Indic keyboard ("０１２…") was stored and signed in
    those digits; each is its ASCII digit here, so the value kept is the number."""
    return "".join(str(int(c)) for c in text if c.isdecimal())


def _digit_runs(text: str) -> list[tuple[str, int, int]]:
    """Each run of digits with box separators: (digits, start, end)."""
    return [(_ascii_digits(m.group()), m.start(), m.end())
            for m in _DIGIT_RUN.finditer(text)]


def _longest_run(text: str) -> tuple[str, int, int] | None:
    runs = _digit_runs(text)
    return max(runs, key=lambda r: len(r[0])) if runs else None


# Century digit (4th digit of a CCCD): even for men, odd for women (Decree 137/2015,
# Art. 7): 0/1 1900s, 2/3 2000s, 4/5 2100s, 6/7 2200s, 8/9 2300s.
_CENTURY = {0: 1900, 1: 1900, 2: 2000, 3: 2000, 4: 2100, 5: 2100, 6: 2200, 7: 2200,
            8: 2300, 9: 2300}


def cccd_birth_year(number: str) -> int:
    """The birth year a valid CCCD number encodes."""
    return _CENTURY[int(number[3])] + int(number[4:6])


def cccd_is_female(number: str) -> bool:
    return int(number[3]) % 2 == 1


def check_cccd(text: str, formats: Formats) -> Verdict | None:
    run = _longest_run(text)
    if run is None:
        return None
    digits, start, end = run
    if len(digits) != 12:
        return Verdict(PROBLEM, None, (start, end), ("cccd.length",),
                       f"a CCCD number has 12 digits, read {len(digits)} ({digits})")
    if digits[:3] not in formats.cccd_provinces:
        return Verdict(PROBLEM, None, (start, end), ("cccd.province",),
                       f"province code {digits[:3]} does not exist (Circular 59/2021/TT-BCA)")
    if cccd_birth_year(digits) > date.today().year:
        return Verdict(PROBLEM, None, (start, end), ("cccd.century",),
                       f"century digit {digits[3]} gives a birth year in the future")
    return Verdict(VALID, digits, (start, end))


def check_bhxh(text: str, formats: Formats) -> Verdict | None:
    card = _CARD_RE.search(text)
    if card:  # a health-insurance card number ends with the 10-digit BHXH number
        digits = _ascii_digits(card.group(2))
        return Verdict(VALID, digits[-10:], card.span(2), ("bhxh.from_card",))
    run = _longest_run(text)
    if run is None:
        return None
    digits, start, end = run
    if len(digits) != 10:
        return Verdict(PROBLEM, None, (start, end), ("bhxh.length",),
                       f"a BHXH number has 10 digits, read {len(digits)} ({digits})")
    return Verdict(VALID, digits, (start, end))


def check_health_card(text: str, formats: Formats) -> Verdict | None:
    """The 15-character card number (2 letters, benefit level, province, BHXH number)
    of cards before 2021, or the bare 10-digit BHXH number of the newer cards."""
    card = _CARD_RE.search(text.upper())
    if card:
        return Verdict(VALID, card.group(1) + _ascii_digits(card.group(2)), card.span())
    run = _longest_run(text)
    if run is None:
        return None
    digits, start, end = run
    if len(digits) == 10:
        return Verdict(VALID, digits, (start, end))
    return Verdict(PROBLEM, None, (start, end), ("health_card.format",),
                   f"a health-insurance card number is 2 letters and 13 digits or 10 digits, "
                   f"read {text[start:end].strip()!r}")


def check_phone(text: str, formats: Formats) -> Verdict | None:
    m = re.search(r"\+\s*84", text)
    shift = text[:m.start()] + "0" + text[m.end():] if m else text
    run = _longest_run(shift)
    if run is None:
        return None
    digits, start, end = run
    if m:
        start, end = m.start(), end + (m.end() - m.start() - 1)
    if len(digits) == 10 and digits[:3] in formats.mobile_prefixes:
        return Verdict(VALID, digits, (start, end))
    if len(digits) == 11 and digits.startswith("02"):  # landline: 02 + area + number
        return Verdict(VALID, digits, (start, end))
    if len(digits) == 10 and digits.startswith("0"):
        return Verdict(UNCERTAIN, digits, (start, end), ("phone.prefix",),
                       f"no mobile network uses the prefix {digits[:3]}")
    return Verdict(PROBLEM, None, (start, end), ("phone.format",),
                   f"not a Vietnamese mobile (10 digits) or landline (11 digits, 02...) "
                   f"number: {digits}")


def check_integer(text: str, formats: Formats) -> Verdict | None:
    m = re.search(r"\d+", text)
    if m is None:
        return None
    return Verdict(VALID, str(int(m.group())), m.span())


# --- amounts --------------------------------------------------------------------------

_AMOUNT_RE = re.compile(r"\d[\d.,\s]*\d|\d")
_CURRENCY_RE = re.compile(r"^\s*(đồng|đ|vnđ|vnd)\b", re.IGNORECASE)


def check_amount(text: str, formats: Formats) -> Verdict | None:
    """Đồng amounts as printed: "7.500.000 đồng", "7,500,000 VNĐ", "7500000đ"."""
    m = _AMOUNT_RE.search(text)
    if m is None:
        return None
    raw = m.group()
    compact = re.sub(r"\s", "", raw)
    currency = _CURRENCY_RE.match(text[m.end():])
    end = m.end() + (len(currency.group()) if currency else 0)
    if re.fullmatch(r"\d+", compact):
        return Verdict(VALID, compact, (m.start(), end))
    for sep in ".,":
        if re.fullmatch(rf"\d{{1,3}}(?:\{sep}\d{{3}})+", compact):
            return Verdict(VALID, compact.replace(sep, ""), (m.start(), end))
    return Verdict(PROBLEM, None, (m.start(), end), ("amount.format",),
                   f"digits not grouped by thousands: {raw.strip()!r}")


# --- dates ----------------------------------------------------------------------------

_NUMERIC_DATE = re.compile(
    r"(?<!\d)(\d{1,2})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{4})(?!\d)")
_WORDED_DATE = re.compile(
    r"ngay\s+(\d{1,2})\s+thang\s+(\d{1,2})\s+nam\s+(\d{4})(?!\d)")
_BOXED_DATE = re.compile(r"(?<!\d)(\d\s*\d)\s*(\d\s*\d)\s*(\d\s*\d\s*\d\s*\d)(?!\s*\d)")


def _fold_keep_length(text: str) -> str:
    """Lower case without diacritics, one character per character, so positions in
    the folded text are positions in the original."""
    out = []
    for ch in text:
        if ch in "đĐ":
            out.append("d")
            continue
        base = "".join(c for c in unicodedata.normalize("NFD", ch)
                       if not unicodedata.combining(c)).lower()
        out.append(base[:1] if base[:1].isascii() and base[:1].isalnum() else " ")
    return "".join(out)


def _date_parts(text: str) -> tuple[tuple[int, int, int], tuple[int, int]] | None:
    """(day, month, year) and span of the first date written in any form forms use."""
    folded = _fold_keep_length(text)
    found = []
    for pattern, hay in ((_NUMERIC_DATE, text), (_WORDED_DATE, folded), (_BOXED_DATE, text)):
        m = pattern.search(hay)
        if m:
            parts = tuple(int(re.sub(r"\s", "", g)) for g in m.groups())
            found.append((m.start(), (parts[0], parts[1], parts[2]), m.span()))
    if not found:
        return None
    _, parts, span = min(found)
    return parts, span


def parse_date(text: str) -> date | None:
    """The first real date in `text`, day first as Vietnamese always writes it."""
    parts = _date_parts(text)
    if parts is None:
        return None
    (day, month, year), _ = parts
    try:
        return date(year, month, day)
    except ValueError:
        return None


def check_date(text: str, formats: Formats, past: bool = False) -> Verdict | None:
    parts = _date_parts(text)
    if parts is None:
        if re.search(r"\d", text):
            run = _longest_run(text)
            span = (run[1], run[2]) if run else (0, len(text))
            return Verdict(PROBLEM, None, span, ("date.format",),
                           f"no day/month/year date in {text.strip()!r}")
        return None
    (day, month, year), span = parts
    written = f"{day:02d}/{month:02d}/{year}"
    try:
        value = date(year, month, day)
    except ValueError:
        return Verdict(PROBLEM, None, span, ("date.not_real",),
                       f"{written} is not a date in the calendar (day/month/year)")
    if not 1900 <= year <= 2100:
        return Verdict(PROBLEM, None, span, ("date.range",), f"year {year} out of range")
    if past and value > date.today():
        return Verdict(PROBLEM, None, span, ("date.future",), f"{written} is in the future")
    return Verdict(VALID, written, span)


# --- names ----------------------------------------------------------------------------

_ONSET = r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?"
_NUCLEUS = (r"(?:uyu|uya|uye|uou|uoi|oai|oay|oao|oeo|ieu|yeu|uay|ai|ao|au|ay|eo|eu|ia|ie|"
            r"iu|oa|oe|oi|oo|ua|ue|ui|uo|uu|uy|ya|ye|a|e|i|o|u|y)")
_CODA = r"(?:ch|ng|nh|[cmnpt])?"
_SYLLABLE = re.compile(rf"{_ONSET}{_NUCLEUS}{_CODA}")


_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
_HATS = {"\u0302": "aeo", "\u0306": "a", "\u031b": "ou"}  # circumflex, breve, horn


def _letter_ok(ch: str) -> bool:
    """A letter of the Vietnamese alphabet (F, J, W, Z allowed for minority names):
    marks only on vowels, at most one tone, hats only where Vietnamese puts them."""
    parts = unicodedata.normalize("NFD", ch)
    base, marks = parts[0].lower(), parts[1:]
    if base == "đ":
        return not marks
    if not (base.isascii() and base.isalpha()):
        return False
    if marks and base not in "aeiouy":
        return False
    tones = [m for m in marks if m in _TONES]
    hats = [m for m in marks if m not in _TONES]
    return (len(tones) <= 1 and len(hats) <= 1
            and all(m in _HATS and base in _HATS[m] for m in hats))


def is_vietnamese_syllable(word: str) -> bool:
    folded = "".join(c for c in unicodedata.normalize("NFD", word.replace("Đ", "D")
                                                       .replace("đ", "d"))
                     if not unicodedata.combining(c)).lower()
    return bool(_SYLLABLE.fullmatch(folded))


_NAME_TRAIL = re.compile(r"[\s.,;:_…]+$")


def check_name(text: str, formats: Formats, upper_case: bool = True) -> Verdict | None:
    """Vietnamese words, NFC, given in upper case; lower case where the paper prints
    names in capitals (`upper_case`), or syllables Vietnamese does not have, make it
    uncertain."""
    text = unicodedata.normalize("NFC", text)
    stripped = _NAME_TRAIL.sub("", text)
    lead = len(stripped) - len(stripped.lstrip(" .:-_…"))
    core = stripped[lead:]
    if sum(c.isalpha() for c in core) < 2:
        return None
    span = (lead, lead + len(core))
    bad = sorted({c for c in core if not (c.isalpha() or c in " -'")})
    if bad:
        return Verdict(PROBLEM, None, span, ("name.characters",),
                       f"a name has only letters; found {''.join(bad)!r} in {core!r}")
    words = core.split()
    value = unicodedata.normalize("NFC", " ".join(words)).upper()
    flags: list[str] = []
    reasons: list[str] = []
    if any(not _letter_ok(c) for c in core if c.isalpha()):
        flags.append("name.letters")
        reasons.append("letters outside the Vietnamese alphabet")
    if upper_case and any(c.islower() for c in core):
        flags.append("name.case")
        reasons.append("names are written in upper case on this paper")
    odd = [w for w in value.split() if not is_vietnamese_syllable(w.replace("-", ""))]
    if odd:
        flags.append("name.syllable")
        reasons.append(f"not a Vietnamese syllable: {' '.join(odd)}")
    if len(words) < 2:
        flags.append("name.single_word")
        reasons.append("a single word")
    elif formats.surnames and not any(
            value == s or value.startswith(s + " ") for s in formats.surnames):
        flags.append("name.surname")
        reasons.append(f"{value.split()[0]} is not a usual family name")
    if flags:
        return Verdict(UNCERTAIN, value, span, tuple(flags), "; ".join(reasons))
    return Verdict(VALID, value, span)


# --- short texts ----------------------------------------------------------------------

_SEX = {"nam": "Nam", "nu": "Nữ", "male": "Nam", "female": "Nữ"}


def check_sex(text: str, formats: Formats) -> Verdict | None:
    folded = _fold_keep_length(text)
    m = re.search(r"\b(nam|nu|male|female)\b", folded)
    if m:
        return Verdict(VALID, _SEX[m.group(1)], m.span())
    if re.search(r"\w", text):
        return Verdict(PROBLEM, None, (0, len(text)), ("sex.unknown",),
                       f"neither Nam nor Nữ: {text.strip()!r}")
    return None


_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def check_email(text: str, formats: Formats) -> Verdict | None:
    m = _EMAIL_RE.search(text.replace(" ", ""))
    if m:
        return Verdict(VALID, m.group(), (0, len(text.rstrip())))
    if "@" in text:
        return Verdict(PROBLEM, None, (0, len(text)), ("email.format",),
                       f"not an e-mail address: {text.strip()!r}")
    return None


def check_text(text: str, formats: Formats) -> Verdict | None:
    """Free text: whatever is there, without the dotted writing line."""
    stripped = re.sub(r"^[\s.:_…\-]+|[\s.:_…,;]+$", "", text)
    if not re.search(r"\w", stripped):
        return None
    start = text.find(stripped)
    value = unicodedata.normalize("NFC", re.sub(r"\s+", " ", stripped))
    return Verdict(VALID, value, (start, start + len(stripped)))


Checker = Callable[[str, Formats], "Verdict | None"]

CHECKS: Mapping[str, Checker] = {
    "name": check_name, "cccd": check_cccd, "bhxh_number": check_bhxh,
    "health_card": check_health_card, "phone": check_phone, "amount": check_amount,
    "integer": check_integer, "sex": check_sex, "email": check_email, "text": check_text,
}

# Kinds whose value is a number: a candidate needs this many digits to be taken as an
# attempt at the value (a heading that merely mentions "mã số BHXH" is not one).
MIN_DIGITS = {"cccd": 5, "bhxh_number": 5, "health_card": 5, "phone": 5}


def check(kind: str, text: str, formats: Formats, *, past: bool = False,
          upper_case: bool = True) -> Verdict | None:
    """The verdict on `text` as a value of `kind`; None when the text is not an
    attempt at such a value at all (nothing to flag)."""
    if kind in MIN_DIGITS and sum(c.isdigit() for c in text) < MIN_DIGITS[kind]:
        return None
    if kind == "date":
        return check_date(text, formats, past=past)
    if kind == "name":
        return check_name(text, formats, upper_case=upper_case)
    return CHECKS[kind](text, formats)
