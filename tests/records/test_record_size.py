"""The signed record must fit the sync wire (records.max_record_chars, issue 10).

Each paper adds its metadata document (3-8 KB) to the record body, and the sync
service's receiver refuses a body over 512 KiB before parsing it: a dossier signed
over the limit would hold issued codes that can never be delivered. Sign-off refuses
it instead, with a translated message, and issues nothing. The limit is lowered here
so that a dossier of a few real signed papers crosses it (a dossier of ~150 papers
crosses the real one; building that many signed PDF/As would take minutes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.records import audit, dossiers
from appliance.records.errors import RecordTooLarge
from appliance.system.config import Config, with_overrides
from tests.helpers.signed_papers import scanned_forms

LIMIT = 8192
OFFICER = "Nguyễn Thị Lan"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(tmp_path)},
                          records={"max_record_chars": LIMIT})


def _stored(config: Config, suffix: str) -> set[str]:
    return {p.name.removesuffix(suffix) for p in config.paths.files.glob(f"*/*{suffix}")}


def test_the_default_limit_is_the_sync_wire_limit():
    from appliance.sync import wire

    assert Config().records.max_record_chars == wire.MAX_BODY_BYTES


def test_a_record_over_the_limit_is_refused_and_nothing_is_issued(conn, config):
    small = scanned_forms(conn, config, ((1,),))
    record_id = dossiers.sign_off(conn, config, small.dossier_id, OFFICER)
    body = dossiers.record_of(conn, record_id).body_json
    assert len(body) <= LIMIT  # one paper fits
    per_paper = len(json.dumps(json.loads(body)["papers"][0], ensure_ascii=False,
                               separators=(",", ":")))
    assert per_paper > 2000  # the metadata document travels in the body

    many = scanned_forms(conn, config, tuple((seed,) for seed in range(2, 8)))
    before = {p.id: p.pdf_sha256 for p in dossiers.get(conn, many.dossier_id).papers}
    pdfs, trail = _stored(config, ".pdf"), len(audit.entries(conn))
    with pytest.raises(RecordTooLarge) as refused:
        dossiers.sign_off(conn, config, many.dossier_id, OFFICER)
    assert refused.value.key == "error.record_too_large"
    assert "max_record_chars" in str(refused.value)
    # nothing issued: no code, no record, no outbox row, no audit line, no signed file
    dossier = dossiers.get(conn, many.dossier_id)
    assert dossier.status == "submitted" and dossier.record_id is None
    assert all(p.result_code is None for p in dossier.papers)
    assert {p.id: p.pdf_sha256 for p in dossier.papers} == before
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    assert len(audit.entries(conn)) == trail and audit.verify(conn).ok
    assert _stored(config, ".pdf") == pdfs  # the PDFs signed for it were removed again
    assert _stored(config, ".result.json") <= pdfs

    # with the wire's own limit the same dossier signs, every paper coded once
    roomy = with_overrides(config, records={"max_record_chars": 512 * 1024})
    record_id = dossiers.sign_off(conn, roomy, many.dossier_id, OFFICER)
    body = dossiers.record_of(conn, record_id).body_json
    assert LIMIT < len(body) <= 512 * 1024
    codes = [p.result_code for p in dossiers.get(conn, many.dossier_id).papers]
    assert len(codes) == len(set(codes)) == 6 and all(codes)


def test_the_refusal_is_translated():
    root = Path(__file__).parents[2] / "appliance" / "web" / "translations"
    for lang in ("vi", "en"):
        text = json.loads((root / f"{lang}.json").read_text(encoding="utf-8"))
        assert text.get(RecordTooLarge.key)
