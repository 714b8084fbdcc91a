"""The procedures and papers catalogue: the shipped file, and replacements of it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from appliance.records import catalogue as cat


def shipped() -> dict:
    return json.loads(cat.DEFAULT_PATH.read_text(encoding="utf-8"))


def test_the_schema_is_a_valid_json_schema():
    schema = json.loads(cat.SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_shipped_catalogue_is_a_realistic_start():
    catalogue = cat.load()
    codes = {p.code for p in catalogue.papers}
    assert len(catalogue.procedures) >= 6 and len(catalogue.papers) >= 10
    assert {"tk1-ts", "cccd-front", "cccd-back", "birth-certificate", "hospital-discharge",
            "sick-leave-c65", "one-time-14-hsb", "bhxh-book",
            "health-insurance-card"} <= codes
    for procedure in catalogue.procedures:
        assert procedure.name_vi and procedure.name_en
        assert {r.paper for r in procedure.papers} <= codes
    for paper in catalogue.papers:
        assert paper.code == cat.FALLBACK_PAPER or paper.title_labels, paper.code
        assert paper.fields, paper.code


def test_tk1_ts_yields_the_four_mandatory_values():
    paper = cat.load().paper("tk1-ts")
    assert paper is not None
    assert {"full_name", "birth_date", "cccd", "bhxh_number"} <= set(paper.mandatory_fields)
    assert paper.field("birth_date").past and paper.field("full_name").kind == "name"


def test_procedures_name_their_mandatory_and_alternative_papers():
    catalogue = cat.load()
    one_time = catalogue.procedure("huong-bhxh-mot-lan")
    assert one_time.mandatory_papers == ("one-time-14-hsb", "bhxh-book")
    assert one_time.missing_papers({"one-time-14-hsb"}) == ["bhxh-book"]
    sickness = catalogue.procedure("che-do-om-dau")
    assert sickness.missing_papers(set()) == ["sick-leave-c65|hospital-discharge"]
    assert sickness.missing_papers({"hospital-discharge"}) == []
    assert catalogue.procedure("khac").any_paper
    assert catalogue.procedure("no-such") is None and catalogue.paper("no-such") is None


def test_the_codes_of_the_procedures_the_kiosk_offers_today_are_kept():
    """records.procedures lists these today; the catalogue is meant to replace it."""
    codes = {p.code for p in cat.load().procedures}
    assert {"tk1-ts", "cap-lai-the-bhyt", "huong-bhxh-mot-lan", "khac"} <= codes


def test_a_technician_can_point_at_a_replacement(tmp_path: Path):
    data = shipped()
    data["procedures"].append({
        "code": "cap-so-bhxh", "name_vi": "Cấp lại sổ BHXH", "name_en": "Reissue a BHXH book",
        "papers": [{"paper": "tk1-ts", "mandatory": True}]})
    data["papers"][0]["title_labels"].append("Tờ khai TK1-TS (mẫu mới)")
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    replacement = cat.load(path)
    assert replacement.path == path
    assert replacement.procedure("cap-so-bhxh").mandatory_papers == ("tk1-ts",)
    assert cat.load(str(path)).procedure("cap-so-bhxh") is not None


def _broken(mutate) -> dict:
    data = copy.deepcopy(shipped())
    mutate(data)
    return data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("papers"), "'papers' is a required property"),
    (lambda d: d["papers"][0]["fields"][0].update(kind="colour"), "papers/0/fields/0/kind"),
    (lambda d: d["papers"][0].update(code="TK1 TS"), "papers/0/code"),
    (lambda d: d["procedures"][0]["papers"].append({"paper": "tk9", "mandatory": True}),
     "unknown paper types: tk9"),
    (lambda d: d["procedures"][3]["one_of"][0].append("tk9"), "unknown paper types: tk9"),
    (lambda d: d["papers"].append(copy.deepcopy(d["papers"][0])), "defined twice: tk1-ts"),
    (lambda d: d["procedures"].append(copy.deepcopy(d["procedures"][0])),
     "procedures defined twice: tk1-ts"),
    (lambda d: d["papers"].pop(), "no 'other' paper type"),
    (lambda d: d["formats"]["cccd_provinces"].update({"1": "Hà Nội"}), "formats/cccd_provinces"),
    (lambda d: d["papers"][0]["fields"][-1].update(same_as="nobody"), "unknown fields: nobody"),
])
def test_a_broken_catalogue_is_refused_with_the_place(mutate, message):
    with pytest.raises(cat.CatalogueError) as caught:
        cat.from_data(_broken(mutate))
    assert message in str(caught.value)


def test_an_unreadable_file_is_refused(tmp_path: Path):
    with pytest.raises(cat.CatalogueError, match="cannot read"):
        cat.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(cat.CatalogueError, match="not JSON: line 1"):
        cat.load(bad)


def test_the_extraction_follows_a_replacement(tmp_path: Path):
    """A paper type added by file only: guessed by its title, fields by its labels."""
    from appliance.extraction.fields import extract

    data = shipped()
    data["papers"].insert(0, {
        "code": "giay-xac-nhan", "name_vi": "Giấy xác nhận", "name_en": "Confirmation",
        "title_labels": ["Giấy xác nhận thông tin cư trú"],
        "fields": [{"name": "full_name", "kind": "name", "mandatory": True,
                    "labels": ["Họ, chữ đệm và tên"]},
                   {"name": "residence_id", "kind": "cccd", "mandatory": True,
                    "labels": ["Số định danh cá nhân"]}]})
    catalogue = cat.from_data(data)
    result = extract(["GIẤY XÁC NHẬN THÔNG TIN CƯ TRÚ", "Họ, chữ đệm và tên: LÊ VĂN AN"],
                     catalogue=catalogue)
    assert result.paper_type == "giay-xac-nhan"
    assert result.values == {"full_name": "LÊ VĂN AN"} and result.missing == ("residence_id",)
