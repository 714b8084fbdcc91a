from __future__ import annotations

import pytest

from appliance.system import config as cfg
from appliance.system.config import Config, ConfigError, dump, from_mapping, load


def write(tmp_path, text: str):
    path = tmp_path / "appliance.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_default_file_loads_the_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(cfg.CONFIG_ENV, raising=False)
    monkeypatch.setattr(cfg, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load() == Config()


def test_empty_file_loads_the_defaults(tmp_path):
    assert load(write(tmp_path, "")) == Config()


def test_env_variable_names_the_file(monkeypatch, tmp_path):
    path = write(tmp_path, '[device]\nid = "kiosk-07"\n')
    monkeypatch.setenv(cfg.CONFIG_ENV, str(path))
    assert load().device.id == "kiosk-07"


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[device]\ncolour = 'red'\n", "device.colour: unknown key"),
        ("[fax]\nx = 1\n", "fax: unknown key"),
        ("[web]\nthreads = 'four'\n", "web.threads"),
        ("[web]\nthreads = true\n", "web.threads"),
        ("[ocr]\nenabled = 1\n", "ocr.enabled"),
        ("[mqtt]\nhost = 5\n", "mqtt.host"),
        ("web = 3\n", "web: expected a table"),
    ],
)
def test_bad_keys_and_types_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key):
        load(write(tmp_path, text))


def test_int_is_accepted_where_a_float_is_wanted():
    assert from_mapping({"mqtt": {"ack_timeout_seconds": 3}}).mqtt.ack_timeout_seconds == 3.0


@pytest.mark.parametrize("code", ["000.00.12", "000.00.12.h42", "000-00-12-H42", "",
                                  "000.00.12.H42\n"])
def test_bad_agency_code_is_refused(code):
    with pytest.raises(ConfigError, match="device.agency_code"):
        from_mapping({"device": {"agency_code": code}})


@pytest.mark.parametrize("device_id", ["Kiosk-01", "kiosk/01", "kiosk-01\n", "k"])
def test_bad_device_id_is_refused(device_id):
    """The id is a topic segment: a trailing newline passed a regex ending in $."""
    with pytest.raises(ConfigError, match="device.id"):
        from_mapping({"device": {"id": device_id}})


@pytest.mark.parametrize(
    ("section", "template"),
    [
        ("dossier", "{agency}-{unknown}"),
        ("dossier", "{seq:04d"),
        ("result", "{dossier_code}.{0}"),
    ],
)
def test_bad_code_template_is_refused(section, template):
    with pytest.raises(ConfigError, match=f"codes.{section}: bad template"):
        from_mapping({"codes": {section: template}})


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"device": {"id": "Kiosk 1"}}, "device.id"),
        ({"device": {"sequence_first": 10, "sequence_last": 5}}, "device.sequence_first"),
        ({"scanner": {"resolution": 150}}, "scanner.resolution"),
        ({"mqtt": {"port": 0}}, "mqtt.port"),
        ({"web": {"default_language": "fr"}}, "web.default_language"),
    ],
)
def test_bad_values_are_named(mapping, key):
    with pytest.raises(ConfigError, match=key):
        from_mapping(mapping)


def test_toml_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path, "[device\nid = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_dump_then_load_round_trips(tmp_path):
    original = from_mapping(
        {
            "device": {
                "id": "kiosk-02",
                "agency_name": 'BHXH "Hoàn Kiếm" \\ Hà Nội\nline\ttab\x7f',
            },
            "mqtt": {"host": "broker.local", "tls": True, "ack_timeout_seconds": 2.5},
            "codes": {"dossier": "{agency}-{yymmdd}-{seq:04d}"},
        }
    )
    assert load(write(tmp_path, dump(original))) == original
    assert load(write(tmp_path, dump(Config()))) == Config()
