"""JSONTestSuite, JSON this project did not write, against everything that reads MQTT.

The 318 parsing cases and 22 transform cases of Nicolas Seriot's JSONTestSuite
(tests/corpus/jsontestsuite, MIT; its README gives the source) go first through the
wire's bounded decoder. Each of them must read as Python's json reads it, or be
refused with a WireError, and nothing else: no other exception, and no case may take
long. Then each file goes through a real mosquitto at a real receiver and a real
device:
- as a raw message on the device's records topic;
- as the body of a record message whose sha256 matches;
- as a raw message on the device's ack topic.

Genuine records are sent around them. Afterwards both services are still running,
every genuine record is at the receiver exactly once, and nothing of the suite is
stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.central import store as central_store
from appliance.central.receiver import run_receiver
from appliance.sync import wire
from appliance.sync.errors import WireError
from appliance.sync.publisher import run_publisher
from tests.helpers.json_values import typed
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    assert_no_false_delivery,
    broker,
    brokers,
    central_counters,
    device_dead_letters,
    enqueue,
    make_config,
    probe,
    services,
    wait_for,
)

__all__ = ["broker", "brokers", "services"]  # the fixtures this module uses

SUITE = Path(__file__).resolve().parents[1] / "corpus" / "jsontestsuite"
PARSING = sorted((SUITE / "test_parsing").glob("*.json"))
TRANSFORM = sorted((SUITE / "test_transform").glob("*.json"))
# The longest any one case may take through a decoder, on a slow shared core; the
# 100,000 opening brackets take about 1 ms.
SECONDS_PER_CASE = 0.5

# Valid JSON that the wire refuses on purpose, and why. Two equal keys would mean
# whatever the last one says to Python, and maybe something else to another reader of
# the same bytes. Numbers are limited to MAX_NUMBER_CHARS digits before any parser
# runs; the case is 78 digits of -0.000...1.
REFUSED_ON_PURPOSE = {
    "y_object_duplicated_key.json": "duplicate key",
    "y_object_duplicated_key_and_value.json": "duplicate key",
    "y_number_double_close_to_zero.json": "78 characters",
}


def _name(path: Path) -> str:
    return path.name


def _body_limits(raw: bytes) -> Any:
    return wire.bounded_loads(raw, max_bytes=wire.MAX_BODY_BYTES * 4,
                              max_depth=wire.MAX_BODY_DEPTH)


def _timed(read: Any, raw: Any) -> tuple[str, Any]:
    """("read", value) or ("refused", reason); any other exception fails the test."""
    start = time.perf_counter()
    try:
        outcome: tuple[str, Any] = ("read", read(raw))
    except WireError as e:
        outcome = ("refused", str(e))
    took = time.perf_counter() - start
    assert took < SECONDS_PER_CASE, f"{took:.3f} s"
    return outcome


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@pytest.mark.parametrize("case", PARSING + TRANSFORM, ids=_name)
def test_every_reader_of_the_wire_reads_or_refuses_each_case(case: Path) -> None:
    """Each decoder that takes bytes off MQTT, and the body parser, with this case."""
    raw = case.read_bytes()
    _timed(_body_limits, raw)
    _timed(lambda b: wire.bounded_loads(b, max_bytes=wire.MAX_MESSAGE_BYTES,
                                        max_depth=wire.MAX_ENVELOPE_DEPTH), raw)
    outcome, _ = _timed(wire.decode_device_message, raw)
    assert outcome == "refused"  # a case is no message of ours
    outcome, _ = _timed(wire.decode_ack_message, raw)
    assert outcome == "refused"
    text = _text(raw)
    if text is not None:
        outcome, _ = _timed(wire.parse_body, text)
        assert outcome == "refused"  # no case names a record and its device


@pytest.mark.parametrize("case", [p for p in PARSING if p.name.startswith("y_")
                                  and p.name not in REFUSED_ON_PURPOSE], ids=_name)
def test_valid_json_reads_as_python_reads_it(case: Path) -> None:
    raw = case.read_bytes()
    outcome, value = _timed(_body_limits, raw)
    assert outcome == "read", value
    assert value == json.loads(raw)


@pytest.mark.parametrize("case", [p for p in PARSING if p.name.startswith("n_")],
                         ids=_name)
def test_invalid_json_is_refused(case: Path) -> None:
    outcome, value = _timed(_body_limits, case.read_bytes())
    assert outcome == "refused", f"read as {value!r}"


@pytest.mark.parametrize("name", sorted(REFUSED_ON_PURPOSE))
def test_valid_json_refused_on_purpose_says_why(name: str) -> None:
    outcome, reason = _timed(_body_limits, (SUITE / "test_parsing" / name).read_bytes())
    assert outcome == "refused"
    assert REFUSED_ON_PURPOSE[name] in reason


@pytest.mark.parametrize("case", [p for p in PARSING if p.name.startswith("i_")],
                         ids=_name)
def test_cases_left_to_the_implementation_read_as_python_reads_them(case: Path) -> None:
    """Where the RFC lets a parser choose, what the wire reads is what Python reads
    (a lone surrogate stays one here; parse_body refuses it in any field it uses)."""
    raw = case.read_bytes()
    outcome, value = _timed(_body_limits, raw)
    if outcome == "read":
        assert value == json.loads(raw)


def test_transform_cases_the_record_body_depends_on() -> None:
    """The JSONTestSuite transform cases where readers disagree, read the wire's way."""
    def read(name: str) -> tuple[str, Any]:
        return _timed(_body_limits, (SUITE / "test_transform" / name).read_bytes())

    for name in ("object_same_key_different_values.json",
                 "object_same_key_same_value.json", "object_same_key_unclear_values.json"):
        assert read(name) == ("refused", "JSON object with a duplicate key"), name
    for name in ("string_1_invalid_codepoint.json", "string_2_invalid_codepoints.json",
                 "string_3_invalid_codepoints.json"):
        outcome, reason = read(name)
        assert outcome == "refused" and "not UTF-8" in reason, name
    # Escaped lone surrogates are JSON, but no text: not in a field of a body.
    for name in ("string_1_escaped_invalid_codepoint.json",
                 "string_2_escaped_invalid_codepoints.json"):
        outcome, value = read(name)
        assert outcome == "read"
        body = {"record_id": "r-1", "device_id": "dev-1", "dossier_code": value[0]}
        outcome, reason = _timed(wire.parse_body, json.dumps(body))
        assert outcome == "refused" and "not Unicode text" in reason, name
    # Integers are read exactly (no float rounding of a size or a count)...
    assert read("number_9223372036854775808.json") == ("read", [9223372036854775808])
    assert read("number_10000000000000000999.json") == ("read", [10000000000000000999])
    # ...and a file size the integer cannot be is refused by the field check.
    body = {"record_id": "r-1", "device_id": "dev-1",
            "papers": [{"file": {"sha256": "a" * 64, "size": 10000000000000000999}}]}
    outcome, reason = _timed(wire.parse_body, json.dumps(body))
    assert outcome == "refused" and "'size'" in reason


# Written for the fast reader: valid JSON on which orjson and Python's json could
# disagree, or that only one of them refuses.
HOSTILE_FOR_THE_FAST_READER = [
    b'{"a":1,"a":2}', b'{"a":{"b":1,"b":1}}', b'[{"x":[{"k":0,"k":0}]}]',
    b'{"a":1, "a":1}', b'[-0]', b'[-0.0]', b'[0.0]', b'[1.0]', b'[1E400]', b'[-1e400]',
    b'[1e16]', b'[1e22]', b'[1.5e-7]', b'[123456789012345678]', b'[18446744073709551615]',
    b'[18446744073709551616]', b'[-9223372036854775808]', b'[-9223372036854775809]',
    b'["\\ud800"]', b'["\\ud800\\udc00"]', b'["\\u00e9"]', b'["\\/"]',
    b'["\\u0000"]', '["T\u1edd khai"]'.encode(), b'"\\""', b'[NaN]', b'[Infinity]',
    b'{"a":[]}', b'{}', b'[]', b'true', b'null', b'"x"', b'1', b'[1,]', b'{"a":1,}',
    b'[1]x', b' [1]', b'[1] ', b'\xef\xbb\xbf[1]',
]


@pytest.mark.parametrize("raw", [c.read_bytes() for c in PARSING + TRANSFORM]
                         + HOSTILE_FOR_THE_FAST_READER,
                         ids=[c.name for c in PARSING + TRANSFORM]
                         + [f"hostile-{i}" for i in range(len(HOSTILE_FOR_THE_FAST_READER))])
def test_the_fast_reader_reads_exactly_what_the_reference_reads_or_leaves_it(
        raw: bytes) -> None:
    """bounded_loads takes orjson's reading of a small payload only where it is the
    reference reader's, type for type and key for key; never one it refuses."""
    fast = wire._fast_loads(raw)  # noqa: SLF001 - the part under test
    if fast is wire._UNREAD:  # noqa: SLF001
        return  # the reference reader decides, as it did before
    # A WireError here, the reference refusing what orjson's reading kept, fails too.
    assert typed(fast) == typed(wire.reference_loads(raw))


def test_a_record_body_is_read_by_the_fast_reader() -> None:
    """What the receiver reads most, a signed record body (records.signing writes it
    compactly, keys sorted, UTF-8), takes the fast path: it is why it is there."""
    from appliance.records import signing

    body = {"record_id": "r-1", "device_id": "dev-1", "dossier_code": "000.00.12.H42-1",
            "audit": [{"at": 1795829907.357883, "prev_sha256": "0" * 64, "seq": 1}],
            "papers": [{"file": None, "title": "Tờ khai", "fields": {"values": {
                "full_name": "NGUYỄN VĂN AN", "so_bhxh": "0123456789"}}}]}
    raw = signing.encode(body).body_json.encode("utf-8")
    assert wire._fast_loads(raw) == body  # noqa: SLF001
    assert wire.parse_body(raw.decode("utf-8")).dossier_code == "000.00.12.H42-1"


def _record_of(index: int, text: str) -> bytes:
    """A record message, well formed, whose body is the case: only the body is bad."""
    return wire.encode_record(wire.RecordMessage(
        f"jts-{index}", hashlib.sha256(text.encode("utf-8")).hexdigest(), text))


@pytest.mark.timeout(120)
def test_the_suite_through_a_real_broker_stores_nothing_and_stops_no_one(
        tmp_path: Path, broker: Any, services: Any) -> None:
    config = make_config(tmp_path, broker.port)
    records = wire.records_topic("bhxh", config.device.id)
    acks = wire.acks_topic("bhxh", config.device.id)
    attacker = Attacker(broker.port)
    receiver = services(run_receiver, config)
    before = probe(lambda: attacker.publish(records, b"["),
                   lambda: central_counters(config).get("dead_letters", 0), "the receiver")
    first = enqueue(config, 2, pdf_sizes=(7_000,))
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, first), 30, "the first genuine records")
    acks_before = device_dead_letters(config).get("total", 0)

    bodies = 0
    for index, case in enumerate(PARSING + TRANSFORM):
        raw = case.read_bytes()
        attacker.publish(records, raw)
        attacker.publish(acks, raw)
        text = _text(raw)
        if text is not None:
            attacker.publish(records, _record_of(index, text))
            bodies += 1
    later = enqueue(config, 3, pdf_sizes=(7_000, 2_000))
    cases = len(PARSING) + len(TRANSFORM)
    wait_for(lambda: central_counters(config).get("dead_letters", 0) >= before + cases,
             40, "every raw case set aside at the receiver")
    wait_for(lambda: central_counters(config).get("records_rejected", 0) >= bodies, 40,
             "every case as a body refused")
    wait_for(lambda: device_dead_letters(config).get("total", 0) >= acks_before + cases,
             40, "every raw case set aside at the device")
    wait_for(lambda: all_delivered(config, first + later), 40, "the later genuine records")

    time.sleep(0.5)
    assert receiver.running() and publisher.running()
    counters = central_counters(config)
    assert counters.get("dead_letters", 0) == before + cases
    assert counters.get("records_rejected", 0) == bodies
    assert device_dead_letters(config).get("total", 0) == acks_before + cases
    assert_exactly_once(config, first + later)
    assert_no_false_delivery(config)
    stored = {r["record_id"] for r in central_store.list_records(config.central.database)}
    assert stored == {r.record_id for r in first + later}
    rejected = central_store.list_rejections(config.central.database)
    assert {r["record_id"] for r in rejected} == {
        f"jts-{i}" for i, case in enumerate(PARSING + TRANSFORM)
        if _text(case.read_bytes()) is not None}
    assert all(r["reason"].startswith("record body unreadable") for r in rejected)
    attacker.close()
