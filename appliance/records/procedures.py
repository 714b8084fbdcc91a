"""The administrative procedures (TTHC) a citizen can start at the kiosk.

Codes are the appliance's own short names; the national TTHC codes and the papers
each procedure needs change with new decisions, so this built-in list is a default
that a later configuration file may replace.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Procedure:
    code: str
    name_vi: str
    name_en: str
    papers: tuple[tuple[str, str], ...]  # (title_vi, title_en) of the papers it asks for

    def name(self, language: str) -> str:
        return self.name_vi if language == "vi" else self.name_en


CATALOGUE: tuple[Procedure, ...] = (
    Procedure(
        "tk1-ts",
        "Đăng ký tham gia, điều chỉnh thông tin BHXH, BHYT",
        "Register for, or update, social and health insurance",
        (("Tờ khai TK1-TS", "Form TK1-TS"), ("Căn cước công dân", "Citizen ID card")),
    ),
    Procedure(
        "cap-lai-the-bhyt",
        "Cấp lại, đổi thẻ BHYT",
        "Reissue or replace a health insurance card",
        (("Tờ khai TK1-TS", "Form TK1-TS"), ("Thẻ BHYT cũ", "Old health insurance card")),
    ),
    Procedure(
        "huong-bhxh-mot-lan",
        "Giải quyết hưởng BHXH một lần",
        "Claim a one-time social insurance payment",
        (("Đơn đề nghị hưởng BHXH một lần", "One-time payment request"),
         ("Sổ BHXH", "Social insurance book")),
    ),
    Procedure(
        "khac",
        "Số hóa giấy tờ theo yêu cầu",
        "Digitize papers on request",
        (("Giấy tờ khác", "Other paper"),),
    ),
)


def find(code: str) -> Procedure | None:
    return next((p for p in CATALOGUE if p.code == code), None)
