"""The wire format between appliances and the central office (version 1).

Topics:
  {prefix}/devices/{device_id}/records  device -> central: file chunks, then the record
  {prefix}/devices/{device_id}/acks     central -> device: signed acks, signed resume answers

Additions within version 1 (a peer that does not know them moves them aside as an
unknown type; each is only sent to a peer that asked for it):
  record "batch": true   the device reads "acks": many records acknowledged in one
                         message, signed once (the receiver commits in groups);
  "records" (device -> central): several small records, with their files when each
                         fits one chunk, in one message; sent only to a receiver that
                         has answered with "acks";
  binary chunks:         BINARY_CHUNK_MAGIC, a 2-byte header length, the chunk's JSON
                         header (its "data" field left out) and the raw bytes: no
                         base64 (a third more bytes) and no JSON over the data;
  binary "records":      BINARY_PACK_MAGIC, a 4-byte header length, a JSON header
                         listing each record's id, sha256 and body length in bytes
                         (and each packed file's record id, sha256 and size), then the
                         bodies' UTF-8 bytes and the files' bytes, back to back: a body
                         is neither escaped by the device nor unescaped by the receiver
                         (a third of the receiver's time per small record), sent when
                         "records" would be;
  "resume" (device -> central) and "have" (central -> device, signed, echoing the
                         query's nonce): which chunks of a record's files the receiver
                         already holds, so an interrupted transfer goes on from the
                         first missing chunk instead of from the start.

Every payload is a UTF-8 JSON object with "v" (format version) and "type". A record
travels as the chunks of each of its files followed by one "record" message that
carries body_json verbatim (byte-exact, so its sha256 can be checked) and that
sha256. The receiver keys what it holds by (device, record_id, sha256): a record id
lives in its device's namespace, and an ack names the exact bytes it confirms.

Everything read from the broker is untrusted: anyone who can publish on a topic can
send anything. So `decode` bounds the payload's size, its JSON nesting depth and the
length of every number BEFORE Python's json module sees it (json.loads recurses once
per nesting level and int() is quadratic in the digits: a 100,000-deep array or a
4,301-digit integer would otherwise raise from deep inside the parser, or burn CPU),
and then checks every field's type and range. (A small payload is read by orjson
first, after the same checks, and its reading kept only where Python's json reads the
same: bounded_loads.) Anything it refuses raises WireError, never another exception,
so one except clause at each consumer moves it aside.

Chunks exist because brokers cap message size (AWS IoT Core: 128 KB); mqtt.chunk_bytes
bounds the whole encoded payload, base64 and JSON included, not just the data.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from appliance.sync.errors import WireError
from appliance.system.config import MIN_CHUNK_BYTES

WIRE_VERSION = 1
# Room for the JSON envelope around the base64 data of a chunk.
CHUNK_ENVELOPE_BYTES = 512

# Hard limits on what a consumer will even try to parse. A device's messages are at
# most mqtt.chunk_bytes (120,000 bytes by default, capped at MAX_MESSAGE_BYTES); the record
# message carries the body, which lists a dossier's papers and fields (a few KiB).
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_ACK_BYTES = 4096
# One "acks" message covers at most this many records (about 120 bytes each).
MAX_BATCH_ACK_ITEMS = 256
MAX_BATCH_ACK_BYTES = 64 * 1024
MAX_NONCE_CHARS = 64
# Records packed in one "records" message at most (the message stays within
# mqtt.chunk_bytes, so a few dozen metadata records in practice).
MAX_PACKED_RECORDS = 256
# Files packed beside them (each sent whole, in one piece), at most.
MAX_PACKED_FILES = 256
# (sha256, chunk count) groups in a resume query and in its signed answer, at most. The
# answer must fit MAX_BATCH_ACK_BYTES: a group takes at most 79 bytes, so 512 take 41
# KB. A device asks about its largest files first and sends the others from their
# first chunk (publisher.resume_groups).
MAX_RESUME_GROUPS = 512
MAX_BODY_BYTES = 512 * 1024
# A body sent in chunks (RecordMessage.body_bytes): MAX_BODY_BYTES characters, in UTF-8.
MAX_CHUNKED_BODY_BYTES = MAX_BODY_BYTES * 4
# Our envelopes are flat objects; a record body nests papers -> file/fields -> values.
MAX_ENVELOPE_DEPTH = 2
MAX_BODY_DEPTH = 16
# Longer than any Unix time in ms or file size; Python's own default limit is 4,300.
MAX_NUMBER_CHARS = 20
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_CHUNKS = 65536
MAX_PAPERS = 1000
MAX_RECORD_ID_CHARS = 128
MAX_TEXT_CHARS = 1000
# Unix seconds; anything beyond the year 5138 is not a time a receiver wrote.
MAX_TIMESTAMP = 1e11
ED25519_SIGNATURE_BYTES = 64

# A JSON payload never starts with a NUL byte, so this cannot be mistaken for one.
# The signing key's id (central_key.key_id) on an ack, "acks" or "have" message. Outside
# the signature, so anyone can write any id there: it never decides what is believed
# (every key the device holds is still tried). It lets a device that believes none of
# its keys say which key signed ("the office's new key, not installed here") instead
# of only "bad signature". Optional: receivers before it sent none.
KEY_ID_FIELD = "kid"
BINARY_CHUNK_MAGIC = b"\x00ch1"
MAX_BINARY_HEADER_BYTES = CHUNK_ENVELOPE_BYTES
BINARY_PACK_MAGIC = b"\x00rp1"
# MAX_PACKED_RECORDS ids, hashes and lengths, and as many packed files.
MAX_PACK_HEADER_BYTES = 128 * 1024
# What one record adds to a binary pack's header besides its id: its sha256, its
# length and the quotes and commas around them.
PACK_ITEM_HEADER_BYTES = 64 + 20

_SHA_RE = re.compile(r"^[0-9a-f]{64}\Z")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}\Z")
_RECORD_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
# The same shape as config's device.id: a topic segment without wildcards or '/'.
_DEVICE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
# Every byte but the four brackets, for bytes.translate to delete at C speed.
_NOT_BRACKET_BYTES = bytes(b for b in range(256) if b not in b"[]{}")
# And every byte but those and the quote.
_NOT_STRUCTURE_BYTES = bytes(b for b in range(256) if b not in b'"[]{}')
_SQUARE_BRACKETS = bytes.maketrans(b"{}", b"[]")
# Every digit made "0" and every other byte ".": a run of too many digits is then a
# plain substring search (a regex took a third of the depth check).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_DIGITS = b"0" * (MAX_NUMBER_CHARS + 1)
# What may stand right before a run of digits inside a JSON string but never before a
# number outside one: a quote, or a hex letter of a sha256 (not e/E: an exponent).
_STRING_BEFORE_DIGITS = frozenset(b'"abcdfABCDF')
_DIGIT_RUNS = re.compile(rb"[0-9]{%d,}" % (MAX_NUMBER_CHARS + 1))


def records_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/records"


def acks_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/acks"


def records_subscription(prefix: str) -> str:
    return f"{prefix}/devices/+/records"


def valid_device_id(device_id: object) -> bool:
    return isinstance(device_id, str) and bool(_DEVICE_RE.match(device_id))


def device_from_topic(prefix: str, topic: str) -> str | None:
    """The device id in a records topic, or None for a topic that is not one."""
    head = f"{prefix}/devices/"
    if not topic.startswith(head) or not topic.endswith("/records"):
        return None
    device = topic[len(head): -len("/records")]
    return device if valid_device_id(device) else None


def max_chunk_count(size: int) -> int:
    """The most chunks any device cuts a file of `size` bytes into: every device cuts
    with at least MIN_CHUNK_BYTES per message (configuration refuses less), so its
    chunks carry at least MIN_CHUNK_DATA bytes each, but the last. More chunks than
    this could never add up to the file: a transfer that cannot complete, and rows
    of (nearly) nothing that a byte budget would not count."""
    return max(1, -(-size // MIN_CHUNK_DATA))


def chunk_data_bytes(chunk_bytes: int, *, binary: bool = False) -> int:
    """Raw file bytes per chunk so that the encoded message stays within chunk_bytes.

    binary: the chunk travels as a binary chunk (raw bytes after a header of at most
    MAX_BINARY_HEADER_BYTES), not in base64 inside JSON: a third more data per
    message, so a 1 MB scan is 9 messages of 120,000 bytes instead of 12.
    """
    if binary:
        return max(1, chunk_bytes - len(BINARY_CHUNK_MAGIC) - 2 - MAX_BINARY_HEADER_BYTES)
    return max(3, (chunk_bytes - CHUNK_ENVELOPE_BYTES) // 4 * 3)


# The least file data a chunk but the last carries, in either cut (see max_chunk_count).
MIN_CHUNK_DATA = min(chunk_data_bytes(MIN_CHUNK_BYTES),
                     chunk_data_bytes(MIN_CHUNK_BYTES, binary=True))


class AckStatus(StrEnum):
    """What the receiver holds for (device, record_id) at the acknowledged sha256.

    STORED: these bytes are the record the receiver serves; the device is done.
    CONFLICT: other bytes already came under this id (a squatter, or an old version);
      these are held aside and the device should re-send them with claim=true.
    CONTESTED: more than one content was claimed; all are held aside for an operator.
      The bytes are safe on the central disk, so the device is done too.
    """

    STORED = "stored"
    CONFLICT = "conflict"
    CONTESTED = "contested"


@dataclass(frozen=True)
class Chunk:
    record_id: str
    file_sha256: str
    index: int
    count: int
    size: int
    data: bytes


@dataclass(frozen=True)
class RecordMessage:
    record_id: str
    sha256: str
    body_json: str
    # Set by a device that was told its bytes conflict with others under the same id.
    claim: bool = False
    # Set by a device that reads "acks" messages (many records signed at once).
    batch: bool = False
    # Not 0: the body is not in this message (body_json is ""); it came before it in
    # chunks of this many bytes (UTF-8), sent as a file whose sha256 is the record's.
    # A body too big for one message (a dossier of a few hundred papers) then crosses
    # a broker that caps messages (AWS IoT: 128 KB) like any scan does.
    body_bytes: int = 0
    # The body's UTF-8 bytes as they came in a binary pack (b"" otherwise): the
    # receiver hashes, checks and seals these instead of encoding the text again, three
    # times per record (a body with Vietnamese text encodes at about 1.7 us per KB).
    body_utf8: bytes = field(default=b"", compare=False, repr=False)

    def utf8(self) -> bytes:
        """The body's UTF-8 bytes; UnicodeEncodeError for a lone surrogate (a valid
        JSON escape in an envelope, not text)."""
        return self.body_utf8 or self.body_json.encode("utf-8")


@dataclass(frozen=True)
class Ack:
    """The receiver's signed statement that it committed these bytes for this device."""

    record_id: str
    sha256: str
    received_at: float
    device_id: str = ""
    status: AckStatus = AckStatus.STORED
    signature: bytes = b""
    # The id of the key that signed (central_key.key_id), a hint outside the signature;
    # see KEY_ID_FIELD.
    key_id: str = ""

    def signed_bytes(self) -> bytes:
        """What the receiver's Ed25519 key signs: every field a device acts on.

        The device id is inside so that an ack replayed onto another device's topic
        fails, the sha256 so that an ack cannot be moved to other bytes, the status so
        that a CONFLICT cannot be turned into STORED. received_at is written with
        repr(), which round-trips exactly through JSON.
        """
        return json.dumps(["appliance-ack/1", self.device_id, self.record_id, self.sha256,
                           repr(float(self.received_at)), self.status.value],
                          separators=(",", ":")).encode("utf-8")

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "sha256": self.sha256,
                "received_at": self.received_at, "device_id": self.device_id,
                "status": self.status.value,
                "sig": base64.b64encode(self.signature).decode("ascii"),
                **_key_id_field(self.key_id)}


@dataclass(frozen=True)
class RecordPack:
    """Small records travelling together: per-message costs (MQTT, broker, the
    receiver's savepoint) are paid once for all of them. Each is stored and
    acknowledged exactly as if it had come alone (with batch=True)."""

    records: tuple[RecordMessage, ...]
    # Files of one chunk each (index 0 of 1), stored before the records that name them.
    files: tuple[Chunk, ...] = ()


class AckItem(NamedTuple):
    """One record of an "acks" message. A named tuple, not a frozen dataclass: a device
    reads hundreds per message and a frozen dataclass cost several times as much to make."""

    record_id: str
    sha256: str
    status: AckStatus = AckStatus.STORED


@dataclass(frozen=True)
class BatchAck:
    """Many records of one device acknowledged at once: one signature for a whole
    group commit (an Ed25519 signature and its check cost more than the rest of a small
    record's handling). Each item means exactly what a single Ack with it would."""

    device_id: str
    received_at: float
    items: tuple[AckItem, ...]
    signature: bytes = b""
    key_id: str = ""

    def _flat(self) -> list[str]:
        return [v for item in self.items for v in (item.record_id, item.sha256,
                                                    item.status.value)]

    def signed_bytes(self) -> bytes:
        return json.dumps(["appliance-acks/1", self.device_id, repr(float(self.received_at)),
                           self._flat()], separators=(",", ":")).encode("utf-8")

    def acks(self) -> list[Ack]:
        """One Ack per item (carrying this message's signature, for the record kept on
        the device; it verifies only as part of the batch)."""
        return [Ack(i.record_id, i.sha256, self.received_at, self.device_id, i.status,
                    self.signature, self.key_id) for i in self.items]


@dataclass(frozen=True)
class ResumeQuery:
    """Device -> central: which chunks of these files (sha256, chunk count) do you hold?"""

    record_id: str
    nonce: str
    files: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Have:
    """Central -> device, signed: for each file of the query, the first chunk index it
    does not hold (count: all of them, or the file is stored already). The nonce ties
    it to one query, so an old answer replayed later cannot make a device skip chunks."""

    device_id: str
    record_id: str
    nonce: str
    files: tuple[tuple[str, int, int], ...]
    signature: bytes = b""
    key_id: str = ""

    def signed_bytes(self) -> bytes:
        flat: list[object] = [v for f in self.files for v in f]
        return json.dumps(["appliance-have/1", self.device_id, self.record_id, self.nonce,
                           flat], separators=(",", ":")).encode("utf-8")


Message = Chunk | RecordMessage | RecordPack | Ack | BatchAck | ResumeQuery | Have


def _key_id_field(key_id: str) -> dict[str, str]:
    return {KEY_ID_FIELD: key_id} if key_id else {}


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_chunk(chunk: Chunk) -> bytes:
    """All ASCII (ids, hex, base64): json's ASCII encoder is six times faster on it."""
    return json.dumps({
        "v": WIRE_VERSION, "type": "chunk", "record_id": chunk.record_id,
        "sha256": chunk.file_sha256, "index": chunk.index, "count": chunk.count,
        "size": chunk.size, "data": base64.b64encode(chunk.data).decode("ascii"),
    }, separators=(",", ":")).encode("ascii")


def encode_record(msg: RecordMessage) -> bytes:
    obj: dict[str, Any] = {"v": WIRE_VERSION, "type": "record", "record_id": msg.record_id,
                           "sha256": msg.sha256}
    if msg.body_bytes:
        obj["body_bytes"] = msg.body_bytes
    else:
        obj["body_json"] = msg.body_json
    if msg.claim:
        obj["claim"] = True
    if msg.batch:
        obj["batch"] = True
    return _dump(obj)


def encode_record_pack(records: list[RecordMessage], files: list[Chunk] = ()) -> bytes:
    """Records with claim=false only (a claim travels alone, in a "record" message)."""
    return join_record_pack([pack_item(r) for r in records], files)


@dataclass(frozen=True)
class PackItem:
    """One record's part of a binary "records" message, made once per record: the
    sender measures a pack with len() before building it."""

    record_id: str
    sha256: str
    body: bytes

    def __len__(self) -> int:
        """Bytes this record adds to a pack: its body and its line in the header."""
        return len(self.body) + len(self.record_id) + PACK_ITEM_HEADER_BYTES


def pack_item(record: RecordMessage) -> PackItem:
    return PackItem(record.record_id, record.sha256, record.utf8())


def join_record_pack(items: list[PackItem], files: list[Chunk] = ()) -> bytes:
    """A binary "records" message: the header, then the bodies, then the files."""
    header: dict[str, Any] = {"v": WIRE_VERSION, "type": "records", "items": [
        v for i in items for v in (i.record_id, i.sha256, len(i.body))]}
    if files:
        header["files"] = [v for c in files for v in (c.record_id, c.file_sha256, c.size)]
    head = json.dumps(header, separators=(",", ":")).encode("ascii")
    return b"".join([BINARY_PACK_MAGIC, len(head).to_bytes(4, "big"), head,
                     *(i.body for i in items), *(c.data for c in files)])


def encode_batch_ack(batch: BatchAck) -> bytes:
    return _dump({"v": WIRE_VERSION, "type": "acks", "device_id": batch.device_id,
                  "received_at": batch.received_at, "items": batch._flat(),  # noqa: SLF001
                  "sig": base64.b64encode(batch.signature).decode("ascii"),
                  **_key_id_field(batch.key_id)})


def encode_resume(query: ResumeQuery) -> bytes:
    return _dump({"v": WIRE_VERSION, "type": "resume", "record_id": query.record_id,
                  "nonce": query.nonce, "files": [v for f in query.files for v in f]})


def encode_have(have: Have) -> bytes:
    return _dump({"v": WIRE_VERSION, "type": "have", "device_id": have.device_id,
                  "record_id": have.record_id, "nonce": have.nonce,
                  "files": [v for f in have.files for v in f],
                  "sig": base64.b64encode(have.signature).decode("ascii"),
                  **_key_id_field(have.key_id)})


def encode_ack(ack: Ack) -> bytes:
    return _dump({"v": WIRE_VERSION, "type": "ack", **ack.as_dict()})


def iter_chunks(record_id: str, file_sha256: str, data: bytes, chunk_bytes: int, *,
                first: int = 0, binary: bool = False) -> Iterator[Chunk]:
    """Cut a file into chunks; an empty file is still one (empty) chunk so it is announced.

    first: the chunks before it are not made (the receiver holds them: a resumed
    transfer). binary: cut for encode_binary_chunk (see chunk_data_bytes)."""
    step = chunk_data_bytes(chunk_bytes, binary=binary)
    count = max(1, -(-len(data) // step))
    for index in range(first, count):
        yield Chunk(record_id, file_sha256, index, count, len(data),
                    data[index * step:(index + 1) * step])


# --- the bounded JSON decoder -------------------------------------------------------


def _outside_long_digits(payload: bytes) -> bool:
    """Whether a run of more than MAX_NUMBER_CHARS digits may stand outside a string.

    A run right after a quote or a hex letter other than e/E is inside a string (a
    sha256, the zero hash every audit chain starts from) or is not JSON (the parser
    stops before it): only the runs with any other byte before them count (about
    1 us for a record body; a regex for the runs took 30)."""
    digits = payload.translate(_DIGITS_ONLY)
    at = digits.find(_LONG_DIGITS)
    while at >= 0:
        if at == 0 or payload[at - 1] not in _STRING_BEFORE_DIGITS:
            return True
        end = digits.find(b".", at)
        if end < 0:
            return False
        at = digits.find(_LONG_DIGITS, end)
    return False


def _check_depth(payload: bytes, max_depth: int) -> None:
    """Refuse nesting deeper than max_depth by scanning the bytes, before any parser runs.

    Only the brackets outside strings count. Escapes are taken out first, at C speed:
    every escaped backslash (pairs, left to right, as a JSON reader pairs them), then
    every escaped quote; what is left of the quotes are the strings' own. Then, also at
    C speed, everything but quotes and brackets is deleted, and every pair of adjacent
    quotes: when no quote is left, every run of quotes had an even length, so each run
    began with a string's opening quote and no bracket stood inside a string; what
    remains is the brackets outside strings. A record body takes about 6 us so (a few
    hundred quotes and brackets), against 14 us when its strings were blanked out one
    by one. Otherwise (a bracket inside a string, an unterminated string, or a long run
    of digits that may be outside a string) the strings are the odd runs between the
    quotes (bytes.split), blanked out. A backslash outside a string is not JSON: the
    parser stops there, before any bracket this scan may have miscounted after it. An
    unterminated string is dropped, which can only under-count brackets the parser never
    reaches (it refuses the string first).
    """
    if b"\\" in payload:
        payload = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes and brackets only, all brackets made square (a mismatched pair is the
    # parser's to refuse).
    skeleton = payload.translate(_SQUARE_BRACKETS, _NOT_STRUCTURE_BYTES).replace(b'""', b"")
    # Integers are parsed by json's C code (a Python hook per number cost more than the
    # rest of a small message), so their length is bounded here, outside strings.
    if b'"' in skeleton or _outside_long_digits(payload):
        outside_strings = b'""'.join(payload.split(b'"')[::2])
        if _LONG_DIGITS in outside_strings.translate(_DIGITS_ONLY):
            longest = max(len(run) for run in _DIGIT_RUNS.findall(outside_strings))
            raise WireError(f"integer with {longest} characters (limit {MAX_NUMBER_CHARS})")
        skeleton = outside_strings.translate(_SQUARE_BRACKETS, _NOT_BRACKET_BYTES)
    if len(skeleton) <= max_depth:
        return  # not enough brackets to nest deeper
    # Each pass takes out every innermost pair, i.e. exactly one level of the deepest
    # nesting, at C speed (a Python loop over the brackets took 36-44 ms for a 1 MB
    # message of nothing but brackets, 17-19 ms here); more than max_depth openers in
    # a row, before or after a pass, are too deep at once.
    too_deep = b"[" * (max_depth + 1)
    for _level in range(max_depth):
        if too_deep in skeleton:
            break
        shorter = skeleton.replace(b"[]", b"")
        if not shorter:
            return
        if len(shorter) == len(skeleton):
            break  # brackets that do not pair: not JSON either
        skeleton = shorter
    raise WireError(f"JSON nested deeper than {max_depth} levels (or brackets that "
                    "do not pair)")


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS + 10:
        raise WireError(f"number with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise WireError(f"number {text[:30]!r} is not finite")
    return value


def _parse_constant(text: str) -> Any:
    raise WireError(f"{text} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: two "sha256" fields would mean what the last one says to
    Python and maybe something else to another reader."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise WireError("JSON object with a duplicate key")
    return obj


# The most bytes read by orjson first (bounded_loads). Its writer, which checks what it
# read, took 137 MB to write back a 1 MB array of 500,000 numbers; under this bound,
# at most about 9 MB. A record body is a few KB.
MAX_FAST_READ_BYTES = 64 * 1024

# Made once, as json.loads makes its own default one: json.loads with these hooks made
# a decoder and its C scanner per call (about 2 us of every record body's parse).
_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_parse_constant,
                            object_pairs_hook=_object)


def bounded_loads(payload: bytes | str, *, max_bytes: int, max_depth: int,
                  utf8: bytes = b"") -> Any:
    """json.loads with size, depth and number limits checked first; WireError otherwise.

    utf8: a str payload's UTF-8 bytes when the caller has them (not encoded again); they
    must be exactly that, as the checks and the fast reader read them, not the text.

    What it returns is always what the reference reader (Python's json with the hooks
    above) returns. A payload of at most MAX_FAST_READ_BYTES is read by orjson first,
    in a third of the time (a record body: 6.5 us against 15, the largest part of the
    receiver's time per small record); see _fast_loads for why its value is the same.
    """
    try:
        raw = (utf8 or payload.encode("utf-8")) if isinstance(payload, str) else payload
    except UnicodeEncodeError as e:  # a lone surrogate, from a \ud800 escape upstream
        raise WireError(f"payload is not Unicode text: {e.reason} at {e.start}") from e
    if not isinstance(raw, bytes | bytearray):
        raise WireError(f"payload is {type(payload).__name__}, not bytes")
    if len(raw) > max_bytes:
        raise WireError(f"payload of {len(raw)} bytes is over the {max_bytes}-byte limit")
    _check_depth(bytes(raw), max_depth)
    if len(raw) <= MAX_FAST_READ_BYTES:
        value = _fast_loads(raw)
        if value is not _UNREAD:
            return value
    return reference_loads(payload if isinstance(payload, str) else raw)


_UNREAD = object()


def _fast_loads(raw: bytes | bytearray) -> Any:
    """orjson's reading of `raw`, or _UNREAD where the reference reader must decide.

    The value is kept only if `raw` is exactly what orjson writes for it. Then no
    object had a duplicate key (the writer writes each key once, the reference reader
    refuses two), every number is one both read alike (no 1E400, -0 or 30 digits: the
    writer would write those otherwise), no string has an escape the writer would not
    write (a lone surrogate: orjson refuses to read it): so the reference reader reads
    these bytes to this same value. Anything else, valid or not, goes to the reference
    reader, which refuses it or reads it as before, with its own words for why.
    """
    try:
        value = orjson.loads(raw)
        written = orjson.dumps(value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        # JSONEncodeError: nested deeper than orjson writes (254 levels; bounded_loads
        # refuses far less before, but this is not the place to rely on it).
        return _UNREAD
    return value if written == raw else _UNREAD


def reference_loads(payload: bytes | bytearray | str) -> Any:
    """The reference reader: Python's json with the wire's hooks (finite numbers, no
    duplicate keys), errors as WireError. Only for a payload whose size, depth and
    numbers are checked (bounded_loads)."""
    try:
        text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
        return _DECODER.decode(text)
    except UnicodeDecodeError as e:
        raise WireError(f"payload is not UTF-8: {e}") from e
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise WireError(f"payload is not valid JSON: {e}") from e


# --- field checks -------------------------------------------------------------------


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WireError(f"field {name!r} missing or not {kind.__name__}")
    return value


def _int(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = _field(obj, name, int)
    if not low <= value <= high:
        raise WireError(f"field {name!r} = {value} outside {low}..{high}")
    return int(value)


def _sha(obj: dict[str, Any], name: str) -> str:
    value = _field(obj, name, str)
    if not _SHA_RE.match(value):
        raise WireError(f"field {name!r} is not a lower-case hex sha256")
    return value


def _record_id(obj: dict[str, Any]) -> str:
    value = _field(obj, "record_id", str)
    if not _RECORD_ID_RE.match(value):
        raise WireError("record_id empty, too long or with characters outside [A-Za-z0-9._:-]")
    return value


def _envelope(payload: bytes, max_bytes: int) -> dict[str, Any]:
    obj = bounded_loads(payload, max_bytes=max_bytes, max_depth=MAX_ENVELOPE_DEPTH)
    if not isinstance(obj, dict):
        raise WireError("payload is not a JSON object")
    if obj.get("v") != WIRE_VERSION or isinstance(obj.get("v"), bool):
        raise WireError(f"unsupported wire version {str(obj.get('v'))[:20]!r}")
    return obj


def _chunk(obj: dict[str, Any], raw: bytes | None = None) -> Chunk:
    record_id = _record_id(obj)
    count = _int(obj, "count", 1, MAX_CHUNKS)
    index = _int(obj, "index", 0, count - 1)
    size = _int(obj, "size", 0, MAX_FILE_BYTES)
    if raw is not None:
        data = raw
    else:
        try:
            data = base64.b64decode(_field(obj, "data", str), validate=True)
        except (binascii.Error, ValueError) as e:
            raise WireError(f"chunk data is not base64: {e}") from e
    if len(data) > size or (size > 0 and not data):
        raise WireError(f"chunk of {len(data)} bytes for a file of {size} bytes")
    if count > max_chunk_count(size):
        raise WireError(f"{count} chunks for a file of {size} bytes (at most "
                        f"{max_chunk_count(size)})")
    # A device cuts every chunk but the last at one step, and count = ceil(size / step),
    # so step >= ceil(size / count): a shorter chunk before the last is not one of them.
    if index < count - 1 and len(data) < -(-size // count):
        raise WireError(f"chunk {index} of {count} has {len(data)} bytes, fewer than a "
                        f"file of {size} bytes cut into {count} needs")
    return Chunk(record_id, _sha(obj, "sha256"), index, count, size, data)


def _flag(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise WireError(f"field {name!r} is not true/false")
    return value


def _record(obj: dict[str, Any], *, chunked_body: bool = False) -> RecordMessage:
    """A record with its body, or (chunked_body: a "record" message) one whose body
    came in chunks before it: body_bytes instead of body_json, never both."""
    record_id = _record_id(obj)
    if chunked_body and "body_bytes" in obj:
        if "body_json" in obj:
            raise WireError("record message with both body_json and body_bytes")
        size = _int(obj, "body_bytes", 1, MAX_CHUNKED_BODY_BYTES)
        return RecordMessage(record_id, _sha(obj, "sha256"), "", _flag(obj, "claim"),
                             _flag(obj, "batch"), body_bytes=size)
    body = _field(obj, "body_json", str)
    if len(body) > MAX_BODY_BYTES:
        raise WireError(f"body_json of {len(body)} characters is over {MAX_BODY_BYTES}")
    return RecordMessage(record_id, _sha(obj, "sha256"), body, _flag(obj, "claim"),
                         _flag(obj, "batch"))


def _record_pack(obj: dict[str, Any]) -> RecordPack:
    flat = _flat_list(obj, "items", 3, MAX_PACKED_RECORDS)
    records = tuple(
        _record({"record_id": flat[i], "sha256": flat[i + 1], "body_json": flat[i + 2],
                 "batch": True}) for i in range(0, len(flat), 3))
    files: list[Chunk] = []
    if "files" in obj:
        raw = _flat_list(obj, "files", 4, MAX_PACKED_RECORDS * 4)
        for i in range(0, len(raw), 4):
            files.append(_chunk({"record_id": raw[i], "sha256": raw[i + 1], "index": 0,
                                 "count": 1, "size": raw[i + 2], "data": raw[i + 3]}))
            if len(files[-1].data) != files[-1].size:
                raise WireError("a packed file's data does not have its size")
    return RecordPack(records, tuple(files))


def _received_at(obj: dict[str, Any]) -> float:
    received = obj.get("received_at")
    if (not isinstance(received, int | float) or isinstance(received, bool)
            or not 0 <= received < MAX_TIMESTAMP):
        raise WireError("field 'received_at' missing or not a plausible Unix time")
    return float(received)


def _device(obj: dict[str, Any]) -> str:
    device_id = _field(obj, "device_id", str)
    if not valid_device_id(device_id):
        raise WireError("field 'device_id' is not a device id")
    return str(device_id)


_STATUSES = {status.value: status for status in AckStatus}


def _status(value: object) -> AckStatus:
    try:
        return AckStatus(value)
    except ValueError as e:
        raise WireError(f"ack status unknown: {str(value)[:20]!r}") from e


def _signature(obj: dict[str, Any]) -> bytes:
    sig_text = _field(obj, "sig", str)
    if len(sig_text) > 2 * ED25519_SIGNATURE_BYTES:
        raise WireError("field 'sig' too long")
    try:
        return base64.b64decode(sig_text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise WireError(f"field 'sig' is not base64: {e}") from e


def _key_id(obj: dict[str, Any]) -> str:
    """The optional key id of a signed message: "" when absent (a receiver before it)."""
    if KEY_ID_FIELD not in obj:
        return ""
    value = obj[KEY_ID_FIELD]
    if type(value) is not str or not _KEY_ID_RE.match(value):
        raise WireError(f"field {KEY_ID_FIELD!r} is not a key id (16 lower-case hex digits)")
    return value


def _nonce(obj: dict[str, Any]) -> str:
    nonce = _field(obj, "nonce", str)
    if not 16 <= len(nonce) <= MAX_NONCE_CHARS or not nonce.isalnum() or not nonce.isascii():
        raise WireError("field 'nonce' is not 16-64 letters and digits")
    return str(nonce)


def _flat_list(obj: dict[str, Any], name: str, width: int, most: int) -> list[Any]:
    values = _field(obj, name, list)
    if not values or len(values) % width or len(values) // width > most:
        raise WireError(f"field {name!r} is not 1..{most} groups of {width} values")
    return values


def _id_and_sha(record_id: object, sha: object) -> tuple[str, str]:
    """A record id and a sha256 from a flat list (packs, batch acks): _record_id's and
    _sha's checks without a dict per record."""
    if type(record_id) is not str or not _RECORD_ID_RE.match(record_id):
        raise WireError("record_id empty, too long or with characters outside "
                        "[A-Za-z0-9._:-]")
    if type(sha) is not str or not _SHA_RE.match(sha):
        raise WireError("field 'sha256' is not a lower-case hex sha256")
    return record_id, sha


def _batch_ack(obj: dict[str, Any]) -> BatchAck:
    """The same checks as _record_id, _sha and _status, without a dict per record: a
    tenth of the device's time per small record was those calls and dicts."""
    flat = _flat_list(obj, "items", 3, MAX_BATCH_ACK_ITEMS)
    items = []
    record_ids, shas, statuses = flat[0::3], flat[1::3], flat[2::3]
    for record_id, sha, status in zip(record_ids, shas, statuses, strict=True):
        known = _STATUSES.get(status) if type(status) is str else None
        if known is None:
            raise WireError(f"ack status unknown: {str(status)[:20]!r}")
        items.append(AckItem(*_id_and_sha(record_id, sha), known))
    return BatchAck(_device(obj), _received_at(obj), tuple(items), _signature(obj),
                    _key_id(obj))


def _resume(obj: dict[str, Any]) -> ResumeQuery:
    flat = _flat_list(obj, "files", 2, MAX_RESUME_GROUPS)
    files = []
    for i in range(0, len(flat), 2):
        one = {"sha256": flat[i], "count": flat[i + 1]}
        files.append((_sha(one, "sha256"), _int(one, "count", 1, MAX_CHUNKS)))
    return ResumeQuery(_record_id(obj), _nonce(obj), tuple(files))


def _have(obj: dict[str, Any]) -> Have:
    flat = _flat_list(obj, "files", 3, MAX_RESUME_GROUPS)
    files = []
    for i in range(0, len(flat), 3):
        one = {"sha256": flat[i], "count": flat[i + 1], "first": flat[i + 2]}
        count = _int(one, "count", 1, MAX_CHUNKS)
        files.append((_sha(one, "sha256"), count, _int(one, "first", 0, count)))
    return Have(_device(obj), _record_id(obj), _nonce(obj), tuple(files), _signature(obj),
                _key_id(obj))


def _ack(obj: dict[str, Any]) -> Ack:
    record_id = _record_id(obj)
    received = _received_at(obj)
    device_id = _device(obj)
    status = _status(_field(obj, "status", str))
    return Ack(record_id, _sha(obj, "sha256"), received, device_id, status, _signature(obj),
               _key_id(obj))


def encode_binary_chunk(chunk: Chunk) -> bytes:
    """A chunk as its JSON header and its raw bytes (for a receiver known to read it)."""
    header = json.dumps({
        "v": WIRE_VERSION, "type": "chunk", "record_id": chunk.record_id,
        "sha256": chunk.file_sha256, "index": chunk.index, "count": chunk.count,
        "size": chunk.size}, separators=(",", ":")).encode("ascii")
    return BINARY_CHUNK_MAGIC + len(header).to_bytes(2, "big") + header + chunk.data


def _binary_header(payload: bytes, max_bytes: int, magic: bytes, length_bytes: int,
                   max_header: int, kind: str) -> tuple[dict[str, Any], int]:
    """The JSON header of a binary message (magic, its length, the header) checked as an
    envelope of type `kind`, and where the raw bytes after it start."""
    if len(payload) > max_bytes:
        raise WireError(f"payload of {len(payload)} bytes is over the {max_bytes}-byte limit")
    start = len(magic) + length_bytes
    length = int.from_bytes(payload[len(magic):start], "big")
    if len(payload) < start or not 0 < length <= max_header \
            or len(payload) < start + length:
        raise WireError(f"binary {kind} message with a missing or oversized header")
    obj = _envelope(bytes(payload[start:start + length]), max_header)
    if obj.get("type") != kind:
        raise WireError(f"binary {kind} message whose header is not a {kind} header")
    return obj, start + length


def _binary_chunk(payload: bytes, max_bytes: int) -> Chunk:
    obj, offset = _binary_header(payload, max_bytes, BINARY_CHUNK_MAGIC, 2,
                                 MAX_BINARY_HEADER_BYTES, "chunk")
    if "data" in obj:
        raise WireError("binary chunk whose header carries data too")
    return _chunk(obj, bytes(payload[offset:]))


def _binary_pack(payload: bytes, max_bytes: int) -> RecordPack:
    """A binary "records" message: every length is checked against what is there, and
    the bodies and files must fill the rest of the payload exactly."""
    obj, offset = _binary_header(payload, max_bytes, BINARY_PACK_MAGIC, 4,
                                 MAX_PACK_HEADER_BYTES, "records")
    flat = _flat_list(obj, "items", 3, MAX_PACKED_RECORDS)
    records: list[RecordMessage] = []
    for i in range(0, len(flat), 3):
        record_id, sha = _id_and_sha(flat[i], flat[i + 1])
        size = flat[i + 2]
        if type(size) is not int or not 0 <= size <= len(payload) - offset:
            raise WireError(f"packed body length {repr(size)[:20]} outside the payload")
        utf8 = bytes(payload[offset:offset + size])
        try:
            body = utf8.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WireError(f"packed body is not UTF-8: {e}") from e
        if len(body) > MAX_BODY_BYTES:
            raise WireError(f"body_json of {len(body)} characters is over {MAX_BODY_BYTES}")
        records.append(RecordMessage(record_id, sha, body, batch=True, body_utf8=utf8))
        offset += size
    files: list[Chunk] = []
    if "files" in obj:
        raw = _flat_list(obj, "files", 3, MAX_PACKED_FILES)
        for i in range(0, len(raw), 3):
            size = raw[i + 2]
            if type(size) is not int or not 0 <= size <= len(payload) - offset:
                raise WireError(f"packed file size {repr(size)[:20]} outside the payload")
            files.append(_chunk({"record_id": raw[i], "sha256": raw[i + 1], "index": 0,
                                 "count": 1, "size": size},
                                bytes(payload[offset:offset + size])))
            offset += size
    if offset != len(payload):
        raise WireError(f"{len(payload) - offset} bytes after the last packed body or file")
    return RecordPack(tuple(records), tuple(files))


def decode(payload: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and check one payload; anything malformed raises WireError, nothing else."""
    if payload[:len(BINARY_CHUNK_MAGIC)] == BINARY_CHUNK_MAGIC:
        return _binary_chunk(payload, max_bytes)
    if payload[:len(BINARY_PACK_MAGIC)] == BINARY_PACK_MAGIC:
        return _binary_pack(payload, max_bytes)
    obj = _envelope(payload, max_bytes)
    kind = obj.get("type")
    if kind == "chunk":
        return _chunk(obj)
    if kind == "record":
        return _record(obj, chunked_body=True)
    if kind == "ack":
        return _ack(obj)
    if kind == "acks":
        return _batch_ack(obj)
    if kind == "resume":
        return _resume(obj)
    if kind == "have":
        return _have(obj)
    if kind == "records":
        return _record_pack(obj)
    raise WireError(f"unknown message type {str(kind)[:20]!r}")


def decode_ack(payload: bytes) -> Ack:
    """What a device accepts on its ack topic: one small ack, nothing else."""
    msg = decode(payload, max_bytes=MAX_ACK_BYTES)
    if not isinstance(msg, Ack):
        raise WireError(f"{type(msg).__name__} message on an ack topic")
    return msg


def decode_ack_message(payload: bytes) -> Ack | BatchAck | Have:
    """What a device accepts on its ack topic: a single ack (at most MAX_ACK_BYTES), an
    "acks" batch or a "have" answer (at most MAX_BATCH_ACK_BYTES), nothing else."""
    msg = decode(payload, max_bytes=MAX_BATCH_ACK_BYTES)
    if isinstance(msg, Ack) and len(payload) > MAX_ACK_BYTES:
        raise WireError(f"ack of {len(payload)} bytes is over the {MAX_ACK_BYTES}-byte limit")
    if not isinstance(msg, Ack | BatchAck | Have):
        raise WireError(f"{type(msg).__name__} message on an ack topic")
    return msg


def decode_device_message(payload: bytes) -> Chunk | RecordMessage | RecordPack | ResumeQuery:
    """What the receiver accepts on a records topic: chunks, records and resume queries."""
    msg = decode(payload, max_bytes=MAX_MESSAGE_BYTES)
    if isinstance(msg, Ack | BatchAck):
        raise WireError("ack message on a records topic")
    if isinstance(msg, Have):
        raise WireError("have message on a records topic")
    return msg


# --- record bodies ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordBody:
    """The fields of a record body the receiver relies on, checked."""

    record_id: str
    device_id: str
    dossier_code: str
    result_codes: list[str]
    files: list[tuple[str, int]]


def _text(obj: dict[str, Any], name: str, default: str = "") -> str:
    """A short text field of a body, as either database can store it: a lone surrogate
    (a valid JSON escape, "\\ud800") is not text, and failed only at the INSERT, as an
    internal error that took the whole pack with it; nor is U+0000."""
    value = obj.get(name, default)
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise WireError(f"body field {name!r} is not a short string")
    if "\0" in value:
        # Valid JSON ("\u0000") that PostgreSQL text cannot hold: refused on either
        # engine, as this record alone, instead of a dead letter on PostgreSQL only
        # that took the rest of its pack with it.
        raise WireError(f"body field {name!r} holds U+0000")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise WireError(f"body field {name!r} is not Unicode text: {e.reason} at "
                            f"{e.start}") from e
    return value


def parse_body(body_json: str, utf8: bytes = b"") -> RecordBody:
    """Read a record body with the same limits as a message: it came off the wire too.
    utf8: its UTF-8 bytes, when the caller has them."""
    body = bounded_loads(body_json, max_bytes=MAX_BODY_BYTES * 4, max_depth=MAX_BODY_DEPTH,
                         utf8=utf8)
    if not isinstance(body, dict):
        raise WireError("record body is not a JSON object")
    record_id = _record_id(body)
    device_id = body.get("device_id")
    if not valid_device_id(device_id):
        raise WireError("record body has no valid device_id")
    papers = body.get("papers", [])
    if not isinstance(papers, list) or len(papers) > MAX_PAPERS:
        raise WireError("record body 'papers' is not a list of at most "
                        f"{MAX_PAPERS} papers")
    files: list[tuple[str, int]] = []
    codes: list[str] = []
    for paper in papers:
        if not isinstance(paper, dict):
            raise WireError("record body has a paper that is not an object")
        codes.append(_text(paper, "result_code"))
        file = paper.get("file")
        if file is None:
            continue
        if not isinstance(file, dict):
            raise WireError("record body has a paper whose file is not an object")
        if file.get("sha256") is None:
            continue
        files.append((_sha(file, "sha256"), _int(file, "size", 0, MAX_FILE_BYTES)))
    return RecordBody(record_id, str(device_id), _text(body, "dossier_code"), codes, files)


def record_files(body_json: str, *, own: bool = False) -> list[tuple[str, int]]:
    """(sha256, size) of each paper's file named in a record body, in paper order.

    A paper whose file is null has nothing to send; whether that is allowed is the
    records module's decision, recorded verbatim in the body.

    own: the body is one this device signed, read from its own database (sealed with
    its key, so authenticated, and checked against its sha256 by the caller), not
    something off the wire: json's own parser reads it, without the bounded decoder's
    depth scan and hooks (half the device's parsing time per small record). The size
    bound still holds, and every field used is still checked. A body in which every
    "file" key is null (a record of metadata, most of what an office sends) is not
    parsed at all. Without a \\u escape, the only way to write the key "file" is
    `"file"`; records.signing writes it compactly, so when every `"file"` in the text
    is followed by `:null` no paper has a file. Anything else (another spacing, a
    "file" inside a value, a \\u escape) only means the parser runs. That parse was an
    eighth of the device's CPU per metadata record.
    """
    if own:
        if len(body_json) > MAX_BODY_BYTES * 4:
            raise WireError(f"record body of {len(body_json)} characters")
        if "\\u" not in body_json and (
                body_json.count('"file"') == body_json.count('"file":null')):
            return []
        try:
            body = json.loads(body_json)
        except (json.JSONDecodeError, RecursionError) as e:
            raise WireError(f"record body is not valid JSON: {e}") from e
    else:
        body = bounded_loads(body_json, max_bytes=MAX_BODY_BYTES * 4,
                             max_depth=MAX_BODY_DEPTH)
    papers = body.get("papers", []) if isinstance(body, dict) else None
    if not isinstance(papers, list):
        raise WireError("record body does not list its papers")
    files: list[tuple[str, int]] = []
    for paper in papers:
        file = paper.get("file") if isinstance(paper, dict) else None
        if isinstance(file, dict) and file.get("sha256") is not None:
            files.append((_sha(file, "sha256"), _int(file, "size", 0, MAX_FILE_BYTES)))
    return files
