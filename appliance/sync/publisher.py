"""`appliance sync`: send outbox records to the central office until each is acknowledged.

All state that matters is in SQLite: a row is 'delivered' only after the central
receiver's ack (which it publishes after its own commit) names the record's sha256
and, when mqtt.central_public_key is set, carries the central's Ed25519 signature
over this device's id, the record id, that sha256 and the receiver's verdict.
Everything in memory here (what is in flight, paho's queue) may vanish with a
kill -9 of this process or of the broker; the cost is a re-send, which the receiver
deduplicates by record_id. A broker PUBACK is used only as flow control (at most
MAX_INFLIGHT messages and MAX_INFLIGHT_BYTES handed to paho).

Throughput: up to `window` records are claimed (one transaction per group) and sent
without waiting for their acks; acks arrive in signed batches ("acks", one signature
per group commit at the receiver) and are marked delivered in one transaction per
loop. Records go in two lanes by size: small ones (every file in one chunk) travel
packed, many to a message, and go out between a scan's chunks, so they never wait
for a scan. A scan tried before asks the receiver which chunks it holds and resumes
from the first missing one (wire.ResumeQuery / wire.Have).

The ack topic is read as untrusted input: anything that is not a well-formed,
correctly signed ack for one of this device's records, with this record's bytes, is
moved to the sync_dead_letters table with its reason and counted in device_state,
and the PUBACK goes to the broker so it never comes back. A signed ack for other
bytes means the receiver holds something else under this record's id (a squatter):
the record is due again at once; a CONFLICT ack makes the device re-send it with
claim=true, which makes the receiver serve these bytes (see central/store.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.store import db, outbox, space
from appliance.store.errors import StoreError, is_disk_full
from appliance.store.files import FileStore
from appliance.store.outbox import DeadLetterKind
from appliance.store.space import open_when_space
from appliance.sync import wire
from appliance.sync.errors import BrokerUnavailable, LocalFileError, WireError
from appliance.system.config import Config
from appliance.system.notify import pause

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from appliance.sync.acksig import TrustedKeys

log = logging.getLogger(__name__)

Notify = Callable[[str], None]

STATE_KEY = "sync.state"
PACKS_STATE_KEY = "sync.receiver_reads_packs"
# The largest packet sync takes from the broker (client.open_session's max_packet):
# under systemd's MemoryMax=160M, about three copies of it fit beside the service.
MAX_PACKET_BYTES = 16 * 1024 * 1024
# The epoch of this device's MQTT session (_Publisher.note_session).
SESSION_EPOCH_STATE_KEY = "sync.session_epoch"
# Small records sent before the first ack while the receiver's abilities are unknown.
PROBE_RECORDS = 8
ERROR_KEY = "sync.last_error"
NO_BROKER_POLL_SECONDS = 5.0
LOOP_SECONDS = 0.2
# Records claimed and not yet acknowledged at most (scans waiting for their turn in the
# bulk lane not counted); each holds its body in memory, a few KB.
DEFAULT_WINDOW = 1024
# Records claimed per transaction, and scans claimed but not started at most.
CLAIM_BATCH = 256
MAX_PARKED_BULK = 64
# Messages of small records sent for each chunk of a scan while both wait.
SMALL_TURNS = 8
# Scans passed over for lack of room in the bulk lane, remembered at most (ids only).
MAX_PASSED_OVER = 20_000
# How long a record tried before waits for the receiver's answer to its resume query
# (never longer than the ack timeout) before it sends every chunk again.
RESUME_WAIT_SECONDS = 5.0
RESUME_ASKS = 2
# Bytes handed to paho and not yet taken by the broker, at most (one more message may
# go over): paho keeps them in memory until their PUBACK.
MAX_INFLIGHT_BYTES = 4 * 1024 * 1024
# Reconnecting when acks are overdue and none came since the last reconnect: after
# mqtt.stall_reconnect_seconds at first, then backing off to this (a receiver that is
# down for hours costs a reconnect every quarter of an hour, not every minute).
STALL_RECONNECT_MAX_SECONDS = 900.0


PDF_SUFFIX = ".pdf"
# An ack's status as outbox.mark_received_many takes it (an enum's .value per record is
# a descriptor call).
_STATUS_TEXT = {status: status.value for status in wire.AckStatus}
# Dead letters logged one by one up to this many, then every hundredth.
DEAD_LETTERS_LOGGED = 20


@contextlib.contextmanager
def _unless_disk_full(what: str) -> Iterator[None]:
    """Run a write that a full data disk may only postpone (it is tried again later,
    or at the next start): swallow that error with a log line, raise any other."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        if not is_disk_full(e):
            raise
        log.info("%s postponed, the data disk is full: %s", what, e)


def resume_groups(files: Sequence[tuple[str, int]],
                  chunk_count: Callable[[int, bool], int]) -> tuple[tuple[str, int], ...]:
    """The (sha256, chunk count) groups of a resume query for these (sha256, size) files.

    Each file is asked about under both cuts: the chunks held may have been cut for
    base64 (before the receiver was known to read binary chunks) or for binary chunks.
    A query names at most wire.MAX_RESUME_GROUPS groups, so that its signed answer fits
    one ack message. Before, a record of 501 scans or more asked about all of them; the
    receiver refused the whole query and every chunk was sent again. Now the largest
    files are asked about first, and the others are sent from their first chunk.
    """
    by_size = sorted(files, key=lambda file: -file[1])
    groups = dict.fromkeys((sha, chunk_count(size, binary))
                           for sha, size in by_size for binary in (False, True))
    return tuple(groups)[:wire.MAX_RESUME_GROUPS]


@dataclass(slots=True)
class _Flight:
    """A claimed record, from its claim to its ack.

    A record waits in a lane (small or bulk) until its turn, then its messages are made
    (files read and checked only then, so a parked scan holds no file in memory), then
    its ack is due. A bulk record tried before first asks the receiver which chunks it
    holds (resume_nonce) and goes on from the first missing one.
    """

    item: outbox.OutboxItem
    files: list[tuple[str, int]]
    bulk: bool
    messages: Iterator[tuple[bytes, bool]] | None = None
    sent: bool = False
    ack_due: float | None = None
    seq: int = 0
    packed: bool = False
    mids: set[int] = field(default_factory=set)
    asked: bool = False
    asks: int = 0
    resume_nonce: str | None = None
    answer_due: float | None = None
    skip: dict[str, int] = field(default_factory=dict)
    # Per file (sha256): whether the chunks the receiver holds were cut for binary
    # chunks (True) or for base64 (False); a file not named goes by the device's mode.
    cuts: dict[str, bool] = field(default_factory=dict)
    # Its part of a "records" message (wire.pack_item), once measured for a pack.
    pack_item: wire.PackItem | None = None
    # Not 0: its body does not fit one message and goes ahead in chunks of these many
    # bytes, as the last of `files` (named by the record's sha256); see body_bytes.
    body_bytes: int = 0


class _Publisher:
    def __init__(self, config: Config, conn: sqlite3.Connection, stop: threading.Event,
                 notify: Notify, window: int) -> None:
        self.config = config
        self.cfg = config.mqtt
        self.conn = conn
        self.stop = stop
        self.notify = notify
        self.window = max(1, window)
        # The key store.db.connect checked: PDFs are sealed at rest and opened to send.
        self.files = FileStore(config.paths.files, sealer=db.sealer_of(conn))
        self.device_id = config.device.id
        self.chunk_bytes = min(self.cfg.chunk_bytes, wire.MAX_MESSAGE_BYTES)
        if self.chunk_bytes < self.cfg.chunk_bytes:
            log.warning("mqtt.chunk_bytes %d is over what a receiver accepts; using %d",
                        self.cfg.chunk_bytes, self.chunk_bytes)
        self.chunk_data = wire.chunk_data_bytes(self.chunk_bytes)
        self.binary_chunk_data = wire.chunk_data_bytes(self.chunk_bytes, binary=True)
        self.verifier: TrustedKeys | None = None
        if self.cfg.central_public_key:
            # Imported only when acks are to be verified: `cryptography` is about 11 MB
            # resident, which a sync waiting for its broker has no use for.
            from appliance.sync import acksig

            self.verifier = acksig.TrustedKeys.load(Path(self.cfg.central_public_key))
            log.info("acks are believed when signed by central key %s",
                     " or ".join(self.verifier.ids))
        # Records the receiver said conflict with other bytes under their id: their
        # next record message carries claim=true. Lost on restart, which only costs
        # one more CONFLICT ack.
        self.claims: set[str] = set()
        # Verified acks waiting for the one transaction that marks them all delivered
        # after this loop() call. A crash before it only means a re-send.
        # (record_id, sha256, status, receipt, item), as outbox.mark_received_many takes them.
        self.acked: list[tuple[str, str, str, outbox.Receipt, outbox.OutboxItem | None]] = []
        self.topic = wire.records_topic(self.cfg.topic_prefix, config.device.id)
        self.ack_topic = wire.acks_topic(self.cfg.topic_prefix, config.device.id)
        self.client: mqtt.Client | None = None
        self.connected = False
        self.refusal: str | None = None
        self.dropped: str | None = None
        self.flights: dict[str, _Flight] = {}
        # Messages handed to paho and not yet PUBACKed by the broker, and their bytes:
        # bounded so that a backlog of scans never holds more than a few MB in memory.
        self.unacked: dict[int, str] = {}
        self.sizes: dict[int, int] = {}
        self.unacked_bytes = 0
        # Records waiting for their turn to be sent, by size class: a small record never
        # waits for a scan's chunks, it goes out between them (see pick()).
        self.small: deque[str] = deque()
        self.bulk: deque[str] = deque()
        self.small_turns = 0
        self.asking: dict[str, str] = {}
        self.passed_over: set[str] = set()
        # Records of a lost connection not yet given back in the database (the disk was
        # full when the connection went): given back on a later loop (release_pending).
        self.unreleased: list[str] = []
        self.unshown: tuple[str, str] | None = None
        self.claimable = True
        # Send order of records, and the latest one acknowledged: a record sent after it
        # is still in the receiver's queue while acks come in, so its ack timeout counts
        # from the last progress, not from its sending (hundreds are in flight; a slow
        # receiver must not make them all time out and be sent twice).
        self.sent_seq = 0
        self.acked_seq = 0
        self.progress_seq = 0
        self.shown: tuple[str, str] | None = None
        # Messages published, by kind: what the resume test counts.
        self.published: dict[str, int] = {"chunk": 0, "record": 0, "resume": 0, "packed": 0}
        # Set once the receiver has answered with an "acks" message or a "have" (kept
        # in device_state across restarts): it knows the additions to version 1, so
        # small records may travel packed and chunks as raw bytes. Cleared when an ack
        # is late (perhaps a receiver downgraded to one that sets them aside).
        found = db.get_state(conn, PACKS_STATE_KEY)
        self.packs = bool(found and found[0] == "1")
        # The broker session's epoch (on_connect) and how the message being handled
        # came (on_message): its packet id, and whether the broker says it sent it
        # before. A dead letter is keyed by them (outbox.put_dead_letter).
        self.epoch = 0
        self.delivery: tuple[int, bool] = (0, False)
        # When the receiver last answered for a record in flight (an ack or a resume
        # answer it signed), or the connection was made; and when a silent session may
        # be dropped again (see stalled()).
        self.answered_at = time.monotonic()
        self.stall_after = max(self.cfg.ack_timeout_seconds, self.cfg.stall_reconnect_seconds)
        self.stall_backoff = self.stall_after
        self.next_stall_reconnect = 0.0
        # Whether the broker granted this connection the ack topic (its SUBACK); its
        # reason while it refuses it, "" otherwise; the packet id of the last SUBSCRIBE
        # and when to ask again.
        self.acks_granted = False
        self.acks_refused = ""
        self.subscribe_mid: int | None = None
        self.next_subscribe = 0.0

    # --- screen-visible state -------------------------------------------------------

    def show(self, state: str, error: str = "") -> None:
        """Write sync.state / sync.last_error only when they change (each write is an fsync)."""
        if self.shown == (state, error) and self.unshown is None:
            return
        try:
            with db.transaction(self.conn):
                db.set_state(self.conn, STATE_KEY, state)
                if error:
                    db.set_state(self.conn, ERROR_KEY, error)
        except BaseException:
            # Refused (a full disk): written again on a later loop (show_unwritten).
            # Remembered as shown, the screens said "disconnected" while records were
            # delivered (found by the fourth review).
            self.unshown = (state, error)
            raise
        self.shown = (state, error)
        self.unshown = None

    def show_disconnected(self, error: BrokerUnavailable) -> None:
        """A reconnect attempt failed: say so. A full disk postpones the write (to
        show_unwritten); raising here skipped the reconnect back-off, so a full disk
        with the broker away tried every 5 s instead of backing off (seventh review)."""
        with _unless_disk_full("the state 'disconnected'"):
            self.show("disconnected", str(error))

    def catch_up(self) -> None:
        """release_pending and show_unwritten while there is no connection: records of
        a connection lost on a full disk stayed 'sending' (on the screens too) for as
        long as the broker was away (found by the sixth review). A disk still full only
        postpones them to the next loop; it must not keep sync from connecting."""
        with _unless_disk_full("giving back the records of a lost connection"):
            self.release_pending()
            self.show_unwritten()

    def show_unwritten(self) -> None:
        """The state the last show() could not write, now that it may fit."""
        if self.unshown is not None:
            self.show(*self.unshown)

    # --- paho callbacks (run inside client.loop(), in this thread) ------------------

    def on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                   reason: mqtt.ReasonCode, props: object) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            return
        self.connected = True
        self.note_session(new=not flags.session_present)
        self.subscribe_acks(client)
        log.info("connected to %s:%d (session present: %s)", self.cfg.host, self.cfg.port,
                 flags.session_present)

    def subscribe_acks(self, client: mqtt.Client) -> None:
        """Ask for this device's ack topic, at every connection (a broker that lost its
        sessions forgets subscriptions) and again while the broker refuses it.
        Never the retained message: the central does not retain acks, so one found
        there was put by someone else and would come back at every subscribe."""
        from paho.mqtt.subscribeoptions import SubscribeOptions

        from appliance.sync.client import SUBSCRIBE_RETRY_SECONDS

        self.acks_granted = False
        _rc, self.subscribe_mid = client.subscribe(self.ack_topic, options=SubscribeOptions(
            qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))
        self.next_subscribe = time.monotonic() + SUBSCRIBE_RETRY_SECONDS

    def on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                     reason_codes: list[mqtt.ReasonCode], props: object) -> None:
        """The broker's answer for the ack topic. A refusal (an ACL that does not let
        this device read it, as AWS IoT or EMQX answer: mosquitto's acl_file grants and
        then filters) means no ack can ever come: sending would only have the receiver
        store records that this device then sends again and again, and the screens
        said "connected" while nothing was delivered. So nothing is sent (nor before
        the first SUBACK of a connection, see feed), the technician is told what to
        ask the central office for, and the topic is asked for again every
        client.SUBSCRIBE_RETRY_SECONDS."""
        from appliance.sync.client import SUBSCRIBE_RETRY_SECONDS

        if mid != self.subscribe_mid or not reason_codes:
            return
        code = reason_codes[0]
        if not code.is_failure:
            self.acks_granted = True
            if self.acks_refused:
                log.info("the broker now lets this device read %s; sending resumes",
                         self.ack_topic)
                self.acks_refused = ""
                self.show("connected")
            return
        if not self.acks_refused:
            log.error("the broker refused this device's subscription to %s (%s): no "
                      "acknowledgement can arrive, so records wait here, unsent; the "
                      "broker's ACL must let this device read that topic (see "
                      "provisioning/mosquitto-acl.conf). Asking again every %g s",
                      self.ack_topic, code, SUBSCRIBE_RETRY_SECONDS)
        self.acks_refused = str(code)
        with _unless_disk_full("the state 'acks_refused'"):
            self.show("acks_refused", f"subscription to {self.ack_topic} refused by the "
                      f"broker: {code}")

    def on_disconnect(self, client: mqtt.Client, userdata: object,
                      flags: mqtt.DisconnectFlags, reason: mqtt.ReasonCode,
                      props: object) -> None:
        self.connected = False
        self.dropped = str(reason)

    def on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                   reason: mqtt.ReasonCode, props: object) -> None:
        record_id = self.unacked.pop(mid, None)
        self.unacked_bytes -= self.sizes.pop(mid, 0)
        if reason.is_failure:
            log.warning("broker refused a message of record %s: %s", record_id, reason)

    def on_message(self, client: mqtt.Client, userdata: object,
                   message: mqtt.MQTTMessage) -> None:
        """Handle one message; anything but a failing database ends in a dead letter."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # noqa: SLF001 - the raw bytes are all there is
        self.delivery = (message.mid if message.qos else 0, bool(message.dup))
        try:
            self.handle_ack(topic, message.payload, message.retain)
        except sqlite3.OperationalError:
            raise  # the disk, not the message: no PUBACK, the broker keeps it
        except Exception as e:  # noqa: BLE001 - a bug must not become a crash loop
            log.exception("unexpected error on a message on %s", topic)
            self.set_aside(DeadLetterKind.INTERNAL, topic, f"{type(e).__name__}: {e}",
                           message.payload)
        finally:
            self.delivery = (0, False)

    def note_session(self, *, new: bool) -> None:
        """A session the broker did not keep (a first start, a broker that forgot it)
        numbers its packets from 1 again: a new epoch, so that its packet ids never
        match the dead letters of the old one. A kept session sends again what it sent
        before under the same ids."""
        try:
            found = db.get_state(self.conn, SESSION_EPOCH_STATE_KEY)
            epoch = int(found[0]) if found and found[0].isdigit() else 0
            if new:
                epoch += 1
                with db.transaction(self.conn):
                    db.set_state(self.conn, SESSION_EPOCH_STATE_KEY, str(epoch))
        except sqlite3.Error as e:
            # Not written (a full disk): an epoch no dead letter has (a random negative
            # one), so a redelivery may be counted twice, never a new message left out.
            log.warning("cannot note the MQTT session's epoch (%s): a dead letter the "
                        "broker sends again may be counted twice", e)
            epoch = -1 - secrets.randbelow(2**31)
        self.epoch = epoch

    def count_refused_ack(self, conn: sqlite3.Connection, kid: str) -> None:
        """For the doctor: "N acks refused since the key file changed, naming key X,
        which is not installed here" (kid "" when the ack named no such key). Run in
        the dead letter's transaction (set_aside's and_then)."""
        from appliance.system import central_key  # loaded with acksig already

        assert self.verifier is not None  # only a verifier refuses acks
        found = db.get_state(conn, central_key.REFUSED_ACKS_STATE_KEY)
        db.set_state(conn, central_key.REFUSED_ACKS_STATE_KEY,
                     central_key.note_refused_ack(found[0] if found else "", kid,
                                                  time.time(), self.verifier.changed_at_ns,
                                                  self.verifier.ids))

    def set_aside(self, kind: DeadLetterKind, topic: str, reason: str,
                  payload: bytes, part: str = "",
                  and_then: Callable[[sqlite3.Connection], None] | None = None) -> bool:
        """Put the message being handled aside; False when it is one the broker sent
        again and that was set aside already (nothing counted). `part`: which item of
        the message, when each item is set aside on its own (a batch's acks): each is
        then counted once, also when the first time sync sees the batch is a
        redelivery, or when it was killed between two items (red team 16)."""
        mid, dup = self.delivery
        delivery = f"{self.epoch}/{mid}/{part}" if mid else ""
        count = outbox.put_dead_letter(self.conn, topic, kind, reason, payload,
                                       delivery=delivery, redelivered=dup,
                                       and_then=and_then)
        if count is None:
            log.debug("dead letter on %s sent again by the broker, already set aside",
                      topic[:200])
            return False
        if count <= DEAD_LETTERS_LOGGED or count % 100 == 0:
            log.warning("dead letter #%d (%s) on %s, %d bytes: %s", count, kind.value,
                        topic[:200], len(payload), reason)
        return True

    def handle_ack(self, topic: str, payload: bytes, retain: bool) -> None:
        if topic != self.ack_topic:
            self.set_aside(DeadLetterKind.UNEXPECTED_TOPIC, topic, "not this device's ack "
                           "topic", payload)
            return
        if retain:
            self.set_aside(DeadLetterKind.RETAINED, topic, "retained ack", payload)
            return
        try:
            msg = wire.decode_ack_message(payload)
        except WireError as e:
            self.set_aside(DeadLetterKind.MALFORMED, topic, str(e), payload)
            return
        if msg.device_id != self.device_id:
            self.set_aside(DeadLetterKind.OTHER_DEVICE, topic,
                           f"{type(msg).__name__} for device {msg.device_id!r}", payload)
            return
        if self.verifier is not None and not self.verifier.verify(msg):
            unknown = self.verifier.unknown_key(msg)
            self.set_aside(DeadLetterKind.FORGED, topic, self.verifier.refusal(msg), payload,
                           and_then=lambda conn: self.count_refused_ack(conn, unknown))
            return
        if isinstance(msg, wire.BatchAck | wire.Have) and not self.packs:
            self.set_packs(True)
        if isinstance(msg, wire.Have):
            self.resume_from(msg, topic, payload)
            return
        # What the message says of all its records (time, device, signature), made once:
        # per record there is only its id, sha256 and status.
        receipt = outbox.Receipt(msg.received_at, msg.device_id,
                                 base64.b64encode(msg.signature).decode("ascii"),
                                 self.verifier.verified_by if self.verifier else "")
        if isinstance(msg, wire.BatchAck):
            for item in msg.items:
                self.accept(item.record_id, item.sha256, item.status, receipt, topic, payload)
        else:
            self.accept(msg.record_id, msg.sha256, msg.status, receipt, topic, payload)

    def accept(self, record_id: str, sha256: str, status: wire.AckStatus,
               receipt: outbox.Receipt, topic: str, payload: bytes) -> None:
        """Act on one verified ack (alone or from a batch)."""
        flight = self.flights.get(record_id)
        expected = (flight.item.sha256 if flight is not None
                    else outbox.record_sha256(self.conn, record_id))
        if expected is None:
            self.set_aside(DeadLetterKind.UNKNOWN_RECORD, topic,
                           f"no record {record_id} on this device", payload,
                           f"{record_id}:{sha256}")
            return
        if sha256 != expected:
            # The receiver committed other bytes under this id: ours are not there.
            self.set_aside(DeadLetterKind.WRONG_HASH, topic,
                           f"ack for record {record_id} names sha256 {sha256}, "
                           f"ours is {expected}", payload, f"{record_id}:{sha256}")
            log.warning("record %s: the receiver holds other bytes under its id; "
                        "sending ours again now", record_id)
            self.resend_now(record_id)
            return
        if status is wire.AckStatus.CONFLICT:
            log.warning("record %s: the receiver has other bytes under its id too; "
                        "re-sending ours with a claim", record_id)
            self.claims.add(record_id)
            self.resend_now(record_id)
            return
        if status is wire.AckStatus.CONTESTED:
            log.error("record %s: the receiver holds our bytes but another content was "
                      "claimed under its id too; an operator at the central office decides "
                      "which is served (our copy is on its disk)", record_id)
        if flight is not None:
            self.answered()
        # With the record as claimed, if it is in flight: not read again to mark it.
        self.acked.append((record_id, sha256, _STATUS_TEXT[status], receipt,
                           flight.item if flight is not None else None))
        if flight is not None:
            if flight.seq > self.acked_seq:
                self.acked_seq = flight.seq
            self.forget(record_id)
        if self.claims:
            self.claims.discard(record_id)

    def resume_from(self, have: wire.Have, topic: str, payload: bytes) -> None:
        """The receiver's signed answer to our resume query: skip the chunks it holds."""
        # The query is forgotten only when this answers it: an answer under its nonce
        # for another record (signed, but not for us) must not cost the real one.
        record_id = self.asking.get(have.nonce)
        flight = self.flights.get(record_id) if record_id else None
        if flight is None or flight.resume_nonce != have.nonce \
                or have.record_id != flight.item.record_id:
            self.set_aside(DeadLetterKind.STALE, topic,
                           f"answer to no open resume query (record {have.record_id})",
                           payload)
            return
        del self.asking[have.nonce]
        self.answered()
        # Asked for both cuts (see ask): each file goes on with the one of which the
        # receiver holds more, so a scan begun in base64 before the first ack from a
        # receiver that reads binary chunks is not sent again from its first chunk.
        wanted = {(sha, self.chunk_count(size, binary)): binary
                  for sha, size in flight.files for binary in (False, True)}
        skip: dict[str, int] = {}
        cuts: dict[str, bool] = {}
        for sha, count, first in have.files:
            binary = wanted.get((sha, count))
            if binary is not None and first > skip.get(sha, -1):
                skip[sha], cuts[sha] = first, binary
        flight.skip, flight.cuts = skip, cuts
        flight.resume_nonce = None
        flight.answer_due = None
        held = sum(skip.values())
        if held:
            log.info("record %s: the receiver holds %d of its chunks already; sending "
                     "from the first missing one", flight.item.record_id, held)

    def answered(self) -> None:
        """The receiver answered for a record in flight: the session works, if the
        answer came at QoS 1. A message at QoS 0 takes no slot of the send quota, so
        it passes a spent one: genuine acks relayed at QoS 0 by someone who reads our
        ack topic kept a frozen session looking alive (red team 19)."""
        if not self.delivery[0]:
            return
        self.answered_at = time.monotonic()
        self.stall_backoff = self.stall_after

    def stalled(self, now: float) -> bool:
        """Acks are overdue and the receiver has answered for nothing since this
        connection was made: drop it and connect again (with back-off, see
        STALL_RECONNECT_MAX_SECONDS).

        Why: a broker can stop sending us QoS 1 messages while our connection stays up.
        Mosquitto (2.0.11 to 2.0.18 at least) keeps one slot of our send quota (its
        max_inflight_messages) for every message it discards as larger than our
        Maximum Packet Size and gives them back only at a new connection, so a broker
        that lets through messages over 16 MiB let anyone who may publish on our ack
        topic freeze our acks for as long as the connection lasted (red team 17). The
        session is persistent: acks queued for us meanwhile come after the reconnect,
        and a reconnect for a receiver that is merely down costs one CONNECT.
        Only an answer for a record in flight counts as the receiver's voice: junk,
        replayed acks and QoS 0 messages flow past a spent quota. Not sooner than
        mqtt.stall_reconnect_seconds (a minute), so that this stays the rare last
        resort it is meant to be: each reconnect sends again what was in flight."""
        if now - self.answered_at <= self.stall_after or now < self.next_stall_reconnect:
            return False
        self.next_stall_reconnect = now + self.stall_backoff
        self.stall_backoff = min(self.stall_backoff * 2, STALL_RECONNECT_MAX_SECONDS)
        return True

    def mark_acked(self) -> None:
        """Mark every ack of the last loop() call delivered, in one transaction."""
        if not self.acked:
            return
        acked = list(self.acked)  # emptied once written: a full disk keeps them
        done = self.delivered(acked)
        if log.isEnabledFor(logging.DEBUG):
            for record_id in done:
                log.debug("record %s delivered (acknowledged by the receiver)", record_id)
        if done:
            log.info("%d record(s) delivered (acknowledged by the receiver), last %s",
                     len(done), done[-1])

    def delivered(self, acked: list[tuple[str, str, str, outbox.Receipt,
                                          outbox.OutboxItem | None]]) -> list[str]:
        """Write the acks down; only then forget them (a write refused for a full disk
        leaves them for the next loop, or their records would stay 'sending')."""
        done = outbox.mark_received_many(self.conn, acked)
        self.acked = self.acked[len(acked):]
        return done

    def resend_now(self, record_id: str) -> None:
        """Due again at once (not after the ack timeout): the receiver answered already."""
        outbox.retry_later(self.conn, record_id, delay=0)
        self.forget(record_id)

    # --- connection -----------------------------------------------------------------

    def connect(self) -> None:
        self.connected = False
        self.acks_granted = False
        self.refusal = None
        self.dropped = None
        from appliance.sync.client import make_client, open_session

        client = make_client(self.cfg, self.config.device.id)
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_publish = self.on_publish
        client.on_message = self.on_message
        client.on_subscribe = self.on_subscribe
        open_session(client, self.cfg, lambda: self.connected, lambda: self.refusal,
                     max_packet=MAX_PACKET_BYTES)
        self.client = client
        self.answered_at = time.monotonic()
        if not self.acks_refused:  # else said again when the broker answers the SUBSCRIBE
            self.show("connected")

    def lost(self, reason: str) -> None:
        """Connection gone: every claimed record goes back to 'pending', due at once."""
        log.warning("connection to %s:%d lost: %s", self.cfg.host, self.cfg.port, reason)
        if self.client is not None:
            from appliance.sync.client import close

            close(self.client)
        self.client = None
        self.connected = False
        self.release_all()
        self.show("disconnected", reason)

    def release_all(self) -> None:
        """Every claimed record back to 'pending', due at once, and forgotten here.

        They are forgotten even when the disk is full and the write fails: the next
        connection's message ids start again at 1, and its window must not count the
        old connection's bytes. Kept, they stopped every send for good (found by the
        fourth review). The write is then retried on a later loop (release_pending)."""
        self.unreleased += self.flights
        self.flights.clear()
        self.unacked.clear()
        self.sizes.clear()
        self.unacked_bytes = 0
        self.small.clear()
        self.bulk.clear()
        self.asking.clear()
        self.passed_over.clear()
        self.release_pending()

    def release_pending(self) -> None:
        """Give back in the database the records release_all could not (a full disk)."""
        if self.unreleased:
            outbox.retry_many(self.conn, self.unreleased, delay=0)
            self.unreleased = []

    def forget(self, record_id: str) -> None:
        flight = self.flights.pop(record_id, None)
        if flight is None:
            return
        for mid in flight.mids:
            self.unacked.pop(mid, None)
            self.unacked_bytes -= self.sizes.pop(mid, 0)
        if flight.resume_nonce is not None:
            self.asking.pop(flight.resume_nonce, None)
        if not flight.sent:
            lane = self.bulk if flight.bulk else self.small
            with contextlib.suppress(ValueError):
                lane.remove(record_id)

    # --- sending --------------------------------------------------------------------

    def chunk_count(self, size: int, binary: bool | None = None) -> int:
        """Chunks of a file of `size` bytes as this device cuts it now: for binary chunks
        (raw bytes, a third more per message) once the receiver is known to read them."""
        binary = self.packs if binary is None else binary
        return max(1, -(-size // (self.binary_chunk_data if binary else self.chunk_data)))

    def files_of(self, item: outbox.OutboxItem) -> list[tuple[str, int]]:
        """The files a record names, after checking its body: a damaged record sends nothing."""
        if hashlib.sha256(item.utf8()).hexdigest() != item.sha256:
            raise LocalFileError(f"record {item.record_id}: body does not match its sha256")
        if len(item.body_json) > wire.MAX_BODY_BYTES:
            # The receiver refuses it before parsing; say so here instead of re-sending
            # something that can never be acknowledged.
            raise LocalFileError(f"record {item.record_id}: body of {len(item.body_json)} "
                                 f"characters is over the wire limit {wire.MAX_BODY_BYTES}")
        try:
            # Its own record, authenticated by the seal and the sha256 just checked.
            return wire.record_files(item.body_json, own=True)
        except WireError as e:
            raise LocalFileError(f"record {item.record_id}: {e}") from e

    def body_bytes(self, item: outbox.OutboxItem) -> int:
        """The body's size in bytes when its record message would not fit in
        mqtt.chunk_bytes, else 0. Such a body (a dossier of a few hundred papers) goes
        ahead in chunks like a scan, so it crosses a broker that caps messages (which
        dropped the connection at every try of it, and the records behind it waited).
        Escaped into JSON a body is at most twice its UTF-8 bytes, at most three per
        character: nearly every body is decided without encoding anything."""
        if len(item.body_json) * 6 + wire.CHUNK_ENVELOPE_BYTES <= self.chunk_bytes:
            return 0
        whole = wire.encode_record(wire.RecordMessage(
            item.record_id, item.sha256, item.body_json, claim=True, batch=True))
        if len(whole) <= self.chunk_bytes:
            return 0
        return len(item.utf8())

    def messages(self, flight: _Flight) -> Iterator[tuple[bytes, bool]]:
        """Read and verify every file up front, so a damaged record sends nothing at all.

        Raw bytes to a receiver known to read the additions to version 1, decided once
        for the whole record: a file cut for binary chunks must not then go in base64
        (over chunk_bytes) if the receiver turns out not to read them meanwhile."""
        binary = self.packs
        return self._encode(flight, self.read_files(flight, binary), binary)

    def resume_point(self, flight: _Flight, sha: str, size: int,
                     binary: bool) -> tuple[bool, int]:
        """(cut for binary chunks?, first chunk to send) of one file of a flight."""
        cut, first = flight.cuts.get(sha, binary), flight.skip.get(sha, 0)
        if cut and not binary:
            return False, 0  # held in binary cut, but base64 is all we may send now
        return cut, first

    def read_files(self, flight: _Flight, binary: bool) -> list[tuple[str, bytes]]:
        item = flight.item
        blobs: list[tuple[str, bytes]] = []
        for sha, size in flight.files:
            cut, first = self.resume_point(flight, sha, size, binary)
            if first >= self.chunk_count(size, cut):
                blobs.append((sha, b""))  # the receiver holds all of it: nothing to read
                continue
            if flight.body_bytes and (sha, size) == (item.sha256, flight.body_bytes):
                blobs.append((sha, item.utf8()))  # checked by files_of
                continue
            try:
                data = self.files.read(sha, PDF_SUFFIX)
            except FileNotFoundError as e:
                raise LocalFileError(f"record {item.record_id}: file {sha} is missing") from e
            except (StoreError, OSError) as e:
                raise LocalFileError(f"record {item.record_id}: {e}") from e
            if len(data) != size:
                raise LocalFileError(
                    f"record {item.record_id}: file {sha} has {len(data)} bytes, body says {size}"
                )
            blobs.append((sha, data))
        return blobs

    def _encode(self, flight: _Flight, blobs: list[tuple[str, bytes]],
                binary: bool) -> Iterator[tuple[bytes, bool]]:
        item = flight.item
        for (sha, data), (_, size) in zip(blobs, flight.files, strict=True):
            cut, first = self.resume_point(flight, sha, size, binary)
            if first >= self.chunk_count(size, cut):
                continue
            for chunk in wire.iter_chunks(item.record_id, sha, data, self.chunk_bytes,
                                          first=first, binary=cut):
                yield (wire.encode_binary_chunk(chunk) if binary
                       else wire.encode_chunk(chunk)), False
        payload = wire.encode_record(wire.RecordMessage(
            item.record_id, item.sha256, "" if flight.body_bytes else item.body_json,
            item.record_id in self.claims, batch=True, body_bytes=flight.body_bytes))
        if len(payload) > self.chunk_bytes:
            log.warning("record %s message is %d bytes, over mqtt.chunk_bytes (%d): brokers "
                        "with a size cap (AWS IoT: 128 KB) may refuse it",
                        item.record_id, len(payload), self.chunk_bytes)
        yield payload, True

    def claim(self) -> None:
        """Claim due records (one transaction for many) into their lanes.

        Scans beyond MAX_PARKED_BULK waiting in the bulk lane are given back unclaimed
        and passed over until the lane has room again, so small records queued behind
        hundreds of scans still go out at once.
        """
        room = min(self.window - len(self.flights) + len(self.bulk), CLAIM_BATCH)
        if room <= 0:
            return
        if self.passed_over and len(self.bulk) <= MAX_PARKED_BULK // 2:
            self.passed_over.clear()  # room for them again, in outbox order
        if len(self.passed_over) >= MAX_PASSED_OVER:
            self.claimable = False
            return
        items = outbox.claim_many(self.conn, room, exclude=self.passed_over)
        if len(items) < room:
            self.claimable = False  # nothing more is due now; look again next loop
        give_back: list[str] = []
        debug = log.isEnabledFor(logging.DEBUG)  # asked once, not per record
        chunk_data = self.chunk_data
        for item in items:
            try:
                files = self.files_of(item)
            except LocalFileError as e:
                log.error("cannot send: %s; will retry later (attempt %d)", e, item.attempts)
                outbox.retry_later(self.conn, item.record_id)
                self.show("connected", str(e))
                continue
            body_bytes = self.body_bytes(item)
            if body_bytes:
                files = [*files, (item.sha256, body_bytes)]
            bulk = bool(body_bytes) or (
                bool(files) and any(size > chunk_data for _sha, size in files))
            if bulk and len(self.bulk) >= MAX_PARKED_BULK:
                give_back.append(item.record_id)
                continue
            self.flights[item.record_id] = _Flight(item, files, bulk, body_bytes=body_bytes)
            (self.bulk if bulk else self.small).append(item.record_id)
            if debug:
                log.debug("sending record %s (attempt %d)", item.record_id, item.attempts)
        if give_back:
            outbox.unclaim(self.conn, give_back)
            self.passed_over.update(give_back)

    def pick(self) -> _Flight | None:
        """The next record to send a message of: SMALL_TURNS small messages for each
        chunk of a scan, so a small record waits for at most one chunk of a scan, never
        for the whole scan, and a backlog of small records does not stop the scans."""
        bulk = self.flights[self.bulk[0]] if self.bulk else None
        if bulk is not None and not bulk.asked and bulk.item.attempts > 1 \
                and bulk.messages is None:
            self.ask(bulk)
        if bulk is not None and bulk.resume_nonce is not None:
            bulk = None  # waiting for the receiver's answer (or its timeout)
        small = self.flights[self.small[0]] if self.small else None
        if small is None or bulk is None:
            return small or bulk
        self.small_turns += 1
        if self.small_turns > SMALL_TURNS:
            self.small_turns = 0
            return bulk
        return small

    def ask(self, flight: _Flight) -> None:
        """A record tried before: ask the receiver which of its chunks it already holds."""
        assert self.client is not None
        flight.asked = True
        flight.asks += 1
        nonce = secrets.token_hex(16)
        # Both cuts: the chunks held may have been cut for base64 (before the receiver
        # was known to read binary chunks) or for binary chunks.
        query = wire.ResumeQuery(flight.item.record_id, nonce,
                                 resume_groups(flight.files, self.chunk_count))
        if self.publish(flight, wire.encode_resume(query), "resume") is None:
            return
        flight.resume_nonce = nonce
        flight.answer_due = time.monotonic() + min(RESUME_WAIT_SECONDS,
                                                   self.cfg.ack_timeout_seconds)
        self.asking[nonce] = flight.item.record_id

    def publish(self, flight: _Flight, payload: bytes, kind: str) -> int | None:
        """Hand one message to paho; its mid, or None when the connection is gone."""
        assert self.client is not None
        import paho.mqtt.client as mqtt

        info = self.client.publish(self.topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.connected = False
            self.dropped = f"publish failed: {mqtt.error_string(info.rc)}"
            return None
        self.published[kind] += 1
        self.unacked[info.mid] = flight.item.record_id
        self.sizes[info.mid] = len(payload)
        self.unacked_bytes += len(payload)
        flight.mids.add(info.mid)
        return int(info.mid)

    def feed(self) -> None:
        """Publish while paho has room; many records in flight, acks come in batches."""
        assert self.client is not None
        from appliance.sync.client import MAX_INFLIGHT

        if not self.acks_granted:
            # Nothing before the broker grants the ack topic: a refusal (on_subscribe)
            # comes after CONNACK, and the first loop sent the whole backlog before it
            # (red team 20).
            if self.acks_refused and time.monotonic() >= self.next_subscribe:
                self.subscribe_acks(self.client)
            return
        self.claimable = True
        while (self.connected and len(self.unacked) < MAX_INFLIGHT
               and self.unacked_bytes < MAX_INFLIGHT_BYTES):
            if self.claimable and len(self.flights) - len(self.bulk) < self.window:
                self.claim()
            flight = self.pick()
            if flight is None:
                return
            if not self.packs and not self.acked_seq and not flight.bulk \
                    and self.probing() >= PROBE_RECORDS:
                return  # first contact: a few records alone until the receiver answers
            if self.packs and self.packable(flight):
                sent = self.send_pack()
                if sent is None:
                    return
                if sent:
                    continue
            if flight.messages is None:
                try:
                    flight.messages = self.messages(flight)
                except LocalFileError as e:
                    log.error("cannot send: %s; will retry later (attempt %d)", e,
                              flight.item.attempts)
                    outbox.retry_later(self.conn, flight.item.record_id)
                    self.forget(flight.item.record_id)
                    self.show("connected", str(e))
                    continue
            payload, last = next(flight.messages)
            if self.publish(flight, payload, "record" if last else "chunk") is None:
                return
            if last:
                flight.messages = None
                flight.sent = True
                flight.ack_due = time.monotonic() + self.cfg.ack_timeout_seconds
                self.sent_seq += 1
                flight.seq = self.sent_seq
                (self.bulk if flight.bulk else self.small).popleft()

    def probing(self) -> int:
        """Records sent and waiting for their ack (counted only before the first ack
        from a receiver this device has not yet heard read packs): those that time out
        leave room for others, so a receiver away at first contact blocks nothing."""
        return sum(1 for f in self.flights.values() if f.sent)

    def set_packs(self, on: bool) -> None:
        self.packs = on
        with db.transaction(self.conn):
            db.set_state(self.conn, PACKS_STATE_KEY, "1" if on else "0")
        log.info("small records travel %s", "packed" if on else "one per message")

    def packable(self, flight: _Flight) -> bool:
        """A small record not started (its files, if any, fit one chunk each)."""
        return (not flight.bulk and flight.messages is None and not flight.skip
                and flight.item.record_id not in self.claims)

    def send_pack(self) -> bool | None:
        """Publish the small records at the head of the small lane, with their files,
        as one "records" message within mqtt.chunk_bytes. False: the first one alone
        does not fit (it goes as usual, chunk by chunk); None: publishing failed."""
        budget = self.chunk_bytes - wire.CHUNK_ENVELOPE_BYTES
        pack: list[_Flight] = []
        files: list[wire.Chunk] = []
        failed: list[tuple[_Flight, LocalFileError]] = []
        flights = self.flights
        for record_id in self.small:
            flight = flights[record_id]
            if len(pack) >= wire.MAX_PACKED_RECORDS or not self.packable(flight):
                break
            # The size the record takes in the message: its part (its body's bytes and
            # its line in the header), made once and kept for the message itself, and
            # its files (counted as base64: more than they take as raw bytes).
            if flight.files and len(files) + len(flight.files) > wire.MAX_PACKED_FILES:
                # The receiver reads at most that many files in a pack (a record of 257
                # small papers, with mqtt.chunk_bytes raised, was refused at every try).
                if not pack and not failed:
                    return False
                break
            if flight.pack_item is None:
                flight.pack_item = wire.pack_item(wire.RecordMessage(
                    record_id, flight.item.sha256, flight.item.body_json,
                    body_utf8=flight.item.body_utf8))
            size = len(flight.pack_item) + 1
            if flight.files:  # most small records name no file: nothing to add or read
                size += sum(-(-n // 3) * 4 + len(record_id) + 100 for _sha, n in flight.files)
            if size > budget:
                if not pack and not failed:
                    return False
                break
            if flight.files:
                try:
                    blobs = self.read_files(flight, True)
                except LocalFileError as e:
                    failed.append((flight, e))
                    continue
                files += [wire.Chunk(record_id, sha, 0, 1, len(data), data)
                          for sha, data in blobs]
            budget -= size
            pack.append(flight)
        for flight, error in failed:
            log.error("cannot send: %s; will retry later (attempt %d)", error,
                      flight.item.attempts)
            outbox.retry_later(self.conn, flight.item.record_id)
            self.forget(flight.item.record_id)
            self.show("connected", str(error))
        if not pack:
            return bool(failed)
        # `is not None`: a piece's truth would be its len(), a call per record.
        payload = wire.join_record_pack(
            [f.pack_item for f in pack if f.pack_item is not None], files)
        mid = self.publish(pack[0], payload, "record")
        if mid is None:
            return None
        due = time.monotonic() + self.cfg.ack_timeout_seconds
        seq = self.sent_seq
        popleft = self.small.popleft
        for flight in pack:  # up to MAX_PACKED_RECORDS: what is the same for all, read once
            flight.mids.add(mid)
            flight.packed = True
            flight.sent = True
            flight.ack_due = due
            seq += 1
            flight.seq = seq
            popleft()
        self.sent_seq = seq
        self.published["packed"] += len(pack)
        return True

    def expire(self) -> None:
        """No ack in time: the broker or receiver may have lost it, so send it again later.
        No answer to a resume query in time (an older receiver): send every chunk."""
        now = time.monotonic()
        late: list[str] = []
        progressed = self.acked_seq > self.progress_seq
        self.progress_seq = acked_seq = self.acked_seq
        # Read once: this walks every record in flight (a thousand) on every loop.
        floor = now + self.cfg.ack_timeout_seconds
        for record_id, flight in self.flights.items():
            due = flight.ack_due
            if progressed and due is not None and flight.seq > acked_seq and due < floor:
                flight.ack_due = due = floor
            if flight.answer_due is not None and now > flight.answer_due:
                # Lost with a broker that restarted before the receiver subscribed again,
                # or a receiver that does not know resume queries: ask once more, then
                # send every chunk.
                again = flight.asks < RESUME_ASKS
                log.info("no answer to the resume query for record %s; %s", record_id,
                         "asking again" if again else "sending all of it")
                self.asking.pop(flight.resume_nonce or "", None)
                flight.resume_nonce = None
                flight.answer_due = None
                flight.asked = not again
            if due is not None and now > due:
                late.append(record_id)
        if late and self.stalled(now):
            self.lost(f"no ack for {len(late)} record(s) and no answer from the receiver "
                      f"for {now - self.answered_at:.0f} s: connecting again (a broker may "
                      f"hold back our messages on a connection, see stalled())")
            return
        if late and self.packs:
            # Perhaps a receiver that sets packs and binary chunks aside (downgraded):
            # back to plain messages until one answers with signed "acks" again.
            self.set_packs(False)
        if late:
            log.warning("no ack for %d record(s) within %.1f s (first %s); they will be "
                        "re-sent", len(late), self.cfg.ack_timeout_seconds, late[0])
            for record_id in late:
                outbox.retry_later(self.conn, record_id)
                self.forget(record_id)

    # --- main loop ------------------------------------------------------------------

    def run(self) -> None:
        if self.verifier is None and self.cfg.host:
            log.warning("mqtt.central_public_key is not set: acknowledgements are believed "
                        "without a signature check (acceptable for a demo, never in an "
                        "office)")
        self.notify("READY=1")
        if not self.cfg.host:
            log.info("no MQTT broker configured (mqtt.host is empty); records wait in SQLite")
            self.show("no_broker")
            while not self.stop.is_set():
                pause(self.stop, NO_BROKER_POLL_SECONDS, self.notify)
            return
        # paho (with urllib, email and ssl: several MB) loads only once there is a broker
        # to talk to; a device without one keeps that memory for OCR.
        import paho.mqtt.client as mqtt

        from appliance.sync.client import Reconnector
        from appliance.sync.heartbeat import Heartbeat

        reconnect = Reconnector(self.stop, self.notify)
        beat = Heartbeat(self.config)  # doctor's verdicts on .../status, retained
        try:
            while not self.stop.is_set():
                self.notify("WATCHDOG=1")
                try:
                    if self.client is None:
                        self.catch_up()
                        reconnect.attempt(self.connect, self.show_disconnected)
                        continue
                    rc = self.client.loop(timeout=LOOP_SECONDS)
                    self.mark_acked()
                    if rc != mqtt.MQTT_ERR_SUCCESS or not self.connected:
                        self.lost(self.dropped or mqtt.error_string(rc))
                        continue
                    self.release_pending()
                    self.show_unwritten()
                    self.expire()
                    if self.client is None:
                        continue  # expire() dropped a connection that went silent
                    self.feed()
                    beat.tick(self.client)
                except (sqlite3.Error, OSError) as e:
                    # A full data disk: wait for space and go on (records not marked
                    # stay due and are sent again, the receiver deduplicates); exiting
                    # would only be restarted every few seconds by systemd.
                    if not is_disk_full(e):
                        raise
                    log.warning("data disk full, sync waits for space (retry in %.0f s): "
                                "%s", space.RETRY_SECONDS, e)
                    pause(self.stop, space.RETRY_SECONDS, self.notify)
        finally:
            self.shut_down()

    def shut_down(self) -> None:
        """The last acks marked, the connection closed, claimed records given back, the
        screens told. Each step on its own: on a full disk the writes fail, which must
        neither skip closing the connection nor turn an ordinary stop into a failed
        unit (exit 1, found by the seventh review). Rows left 'sending' are given back
        at the next start (outbox.reset_stale)."""
        from appliance.sync.client import close

        def close_client() -> None:
            if self.client is not None:
                close(self.client)

        for step in (self.mark_acked, close_client, self.release_all,
                     lambda: self.show("disconnected")):
            with _unless_disk_full("a step of stopping"):
                step()


def run_publisher(config: Config, stop: threading.Event, notify: Notify | None = None, *,
                  window: int = DEFAULT_WINDOW) -> None:
    """Run until `stop` is set. `window` bounds records sent but not yet acknowledged."""
    tell = notify or (lambda _msg: None)

    def prepare(conn: sqlite3.Connection) -> None:
        # The outbox transitions this process writes (claimed, retry, delivered) may
        # lose their last commits on a power cut, never on a crash of the process
        # (WAL). Each such loss only causes a re-send that the receiver deduplicates,
        # so they skip the fsync; the record and its outbox row were committed with
        # FULL by the records module.
        conn.execute("PRAGMA synchronous=NORMAL")
        outbox.reset_stale(conn)  # a write: waits with the rest on a full disk

    conn = open_when_space(
        lambda: db.connect(config.paths.database, key_file=config.paths.key_file),
        prepare, stop, tell, "sync")
    if conn is None:
        return
    try:
        _Publisher(config, conn, stop, tell, window).run()
    finally:
        conn.close()
