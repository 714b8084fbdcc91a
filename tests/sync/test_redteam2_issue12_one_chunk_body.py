"""Issue 12, second independent acceptance: a record body sent "in chunks" that fits
in ONE chunk.

The device sends a body ahead in chunks when its record message (the body escaped
into JSON: every quote becomes two bytes) would not fit mqtt.chunk_bytes
(publisher._Publisher.body_bytes). Once the receiver is known to read binary chunks
(packs on: the normal state after the first "acks"), a chunk carries
chunk_bytes - 518 raw bytes. So a body whose escaped message is just over chunk_bytes
while its raw bytes are just under chunk_bytes - 518 travels as ONE chunk (count=1).

At the receiver a chunk with count=1 is a "file sent whole" (store._put_chunk ->
_put_whole_file): stored in `files` as a pending file, no transfer row. The record
message that follows (body_bytes) looks only for a complete *transfer*
(store._chunked_body), finds none and is INCOMPLETE. When the device tries again it
asks which chunks are held; first_missing sees the sha256 in `files` and says "all of
them", so the device sends no chunk, only the record message: INCOMPLETE again, for
good. With the default chunk_bytes (120,000) this is a dossier of roughly 115-125
papers (a body of about 108-119 KB).

Here chunk_bytes is picked from the record's own sizes so that a record of 8 papers
falls in that window (the same arithmetic as the default at ~120 papers). Fixed: the
receiver now reads such a body from the file it came as (store._chunked_body).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from appliance.central import store as central_store
from appliance.sync import wire
from appliance.sync.publisher import PACKS_STATE_KEY, run_publisher
from tests.helpers.sync_rig import (
    Attacker,
    all_delivered,
    assert_exactly_once,
    device_state,
    enqueue,
    make_config,
    subscribed_receiver,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)
PAPERS = 8
# The device's ack timeout is 2 s (make_config): several re-sends fit in this.
DELIVERY_S = 12.0


def _sizes(body_json: str, record_id: str, sha: str) -> tuple[int, int]:
    """(raw body bytes, bytes of its record message as body_bytes() measures it)."""
    whole = wire.encode_record(wire.RecordMessage(record_id, sha, body_json, claim=True,
                                                  batch=True))
    return len(body_json.encode("utf-8")), len(whole)


def _window_chunk_bytes() -> int:
    """A chunk_bytes for which an 8-paper record's message does not fit while its
    body fits one binary chunk (measured on a scratch record made the same way)."""
    with tempfile.TemporaryDirectory() as scratch:
        config = make_config(Path(scratch), 1)
        [probe] = enqueue(config, 1, pdf_sizes=(100,) * PAPERS)
    body, whole = _sizes(probe.body_json, probe.record_id, probe.sha256)
    binary_overhead = 10_000 - wire.chunk_data_bytes(10_000, binary=True)
    low, high = body + binary_overhead, whole - 1
    assert high - low > 200, (body, whole)  # room for the ids and codes to vary
    return (low + high) // 2


def test_a_body_that_fits_one_binary_chunk_is_delivered(tmp_path: Path, broker,
                                                         services) -> None:
    chunk_bytes = _window_chunk_bytes()
    config = make_config(tmp_path, broker.port, chunk_bytes=chunk_bytes)
    attacker = Attacker(broker.port)
    receiver = subscribed_receiver(services, config, attacker)
    attacker.close()
    # First contact: a small record, acknowledged in an "acks" message, so the device
    # knows this receiver reads binary chunks (what every device in service knows).
    first = enqueue(config, 1, pdf_sizes=(100,))
    publisher = services(run_publisher, config)
    wait_for(lambda: all_delivered(config, first), 20, "the first small record")
    wait_for(lambda: device_state(config, PACKS_STATE_KEY) == "1", 10,
             "the device to know the receiver reads binary chunks")
    [big] = enqueue(config, 1, pdf_sizes=(100,) * PAPERS)
    body, whole = _sizes(big.body_json, big.record_id, big.sha256)
    # The window: sent with body_bytes, and its body is one binary chunk.
    assert whole > chunk_bytes, (whole, chunk_bytes)
    assert wire.chunk_data_bytes(chunk_bytes, binary=True) >= body, (body, chunk_bytes)
    assert len(list(wire.iter_chunks(big.record_id, big.sha256,
                                     big.body_json.encode("utf-8"), chunk_bytes,
                                     binary=True))) == 1
    try:
        wait_for(lambda: all_delivered(config, [big]), DELIVERY_S,
                 f"a record of {body} body bytes, chunk_bytes {chunk_bytes}")
    except AssertionError as e:
        # Say where the body went: kept as a pending file named by the record's sha256.
        as_file = central_store.get_file(config.central.database, big.sha256)
        raise AssertionError(
            f"{e}; body held at the receiver as a file: {as_file is not None}, chunk state "
            f"{central_store.chunk_state(config.central.database)}") from None
    finally:
        assert receiver.running() and publisher.running()
    assert_exactly_once(config, [*first, big])
    # The body was read from the file it came as, which is then gone with its charge.
    assert central_store.get_file(config.central.database, big.sha256) is None
    assert central_store.chunk_state(config.central.database)["pending_files"] == 0
