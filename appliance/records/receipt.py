"""What the citizen's receipt says in its QR code.

Circular 01/2023/TT-VPCP asks a paper issued by a one-stop system to carry, in a QR
code at its top left (TCVN 7322:2009), at least the dossier code, the procedure code,
the applicant's identifier, the document's name, the issuing system's name and the
time it was issued; a receipt adds the appointment date. Before, the receipt's QR
said the dossier code alone. The fields are joined by "|" after a version tag, as
the result PDF's QR is (records/result.py), so a reader can tell the two apart.
"""

from __future__ import annotations

from datetime import datetime

from appliance.records.codes import VIETNAM
from appliance.records.dossiers import Dossier
from appliance.system.config import Config
from appliance.system.text import one_line

RECEIPT_QR_PREFIX = "BHXHBN|1"
# The applicant's identifier, in this order of preference, from the fields read off
# the dossier's papers (the CCCD number, else the BHXH number).
APPLICANT_FIELDS = ("cccd", "bhxh_number")


def applicant_id(dossier: Dossier) -> str:
    """The first CCCD (else BHXH) number read on the dossier's papers; '' if none."""
    for name in APPLICANT_FIELDS:
        for paper in dossier.papers:
            value = (paper.fields.get("values") or {}).get(name)
            if isinstance(value, str) and value.isascii() and value.isdigit():
                return value
    return ""


def _field(text: str) -> str:
    return one_line(text).replace("|", "/")


def receipt_qr_payload(config: Config, dossier: Dossier, document_name: str,
                       issued_at: float, appointment: str = "") -> str:
    """`BHXHBN|1|dossier code|procedure|applicant|document|system|issued|appointment`;
    `issued` in ISO 8601 at UTC+07:00; `appointment` (a date) empty while the office
    has set none: the appliance receives papers, the counter gives the appointment."""
    device = config.device
    issued = datetime.fromtimestamp(issued_at, VIETNAM).isoformat(timespec="seconds")
    fields = (dossier.code, dossier.procedure_code, applicant_id(dossier), document_name,
              f"{device.agency_name} ({device.agency_code}), {device.id}", issued,
              appointment)
    return "|".join((RECEIPT_QR_PREFIX, *(_field(f) for f in fields)))
