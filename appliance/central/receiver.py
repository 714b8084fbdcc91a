"""`appliance central`: the reference receiver standing in for BHXH's central software.

It subscribes to every device's records topic with a persistent session, stores
chunks and records in its own SQLite, verifies every hash, commits, and only then
publishes the ack, signed with its own Ed25519 key, that lets a device mark the
record delivered.

Group commit: messages are handled inside one open transaction (a savepoint each)
until the socket goes quiet, MAX_BATCH_MESSAGES arrived or MAX_BATCH_SECONDS passed;
then one COMMIT (one fsync for all of them), then the acks, then the PUBACKs (paho
in manual-ack mode). So a message whose commit failed for want of disk is not
acknowledged to the broker either and comes back later, and an ack never leaves
before the commit that it promises. A device that asks for it (record "batch": true)
gets one "acks" message per group commit, signed once, instead of one signed ack per
record: an Ed25519 signature and its check cost more than the rest of a small record.

Resume: a device re-sending a record asks which chunks of its files are held
("resume", with a nonce); the answer ("have", signed, the nonce echoed) names the
first missing chunk of each file, read in the same transaction and published after
its commit like an ack, so the device sends only the rest.

Anything else that goes wrong with a message (it does not parse, breaks a limit, or
trips a bug) is about the message, not the disk: it is moved to the dead-letter
table with its reason and counted, and on_message returns normally so the broker
gets its PUBACK and never redelivers it. No message can stop this process, and none
can put it into a crash loop through a persistent session or a retained message.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from appliance.central import store as central_store
from appliance.central.db import open_configured
from appliance.central.errors import CentralStoreError, ChunkRefused
from appliance.central.store import list_records
from appliance.sync import acksig, wire
from appliance.sync.client import (
    SESSION_EXPIRY_SECONDS,
    SUBSCRIBE_RETRY_SECONDS,
    Reconnector,
    close,
    make_client,
    open_session,
    pause,
)
from appliance.sync.errors import BrokerUnavailable, WireError
from appliance.system.config import Config

log = logging.getLogger(__name__)

Notify = Callable[[str], None]

CLIENT_ID = "appliance-central"
LOOP_SECONDS = 0.2
DB_ERROR_PAUSE_SECONDS = 5.0
# Dead letters logged one by one up to this many, then every hundredth: a flood of
# junk must not flood the journal too (the count is in the database either way).
DEAD_LETTERS_LOGGED = 20
# One fsync per this many messages at most, and no message waits longer than this
# for its commit. mosquitto sends a client at most max_inflight_messages (default 20)
# unacknowledged messages, which usually ends a batch first.
MAX_BATCH_MESSAGES = 256
MAX_BATCH_SECONDS = 0.05
# Messages the broker may send before their PUBACKs (MQTT v5 Receive Maximum), which
# wait for the batch's commit: two batches' worth, so the next batch streams in while
# this one's fsync runs instead of the broker stopping at its max_inflight_messages.
RECEIVE_MAXIMUM = 2 * MAX_BATCH_MESSAGES
# The largest packet the receiver takes from the broker (client.open_session's
# max_packet): under systemd's MemoryMax=512M, about three copies of it fit beside it.
MAX_PACKET_BYTES = 64 * 1024 * 1024
IDLE_POLL_SECONDS = 0.002
# How often the counters (records, dead letters, conflicts, open transfers) are logged
# when they changed: the receiver's status heartbeat in the journal.
REPORT_SECONDS = 60.0
# Behind a shared subscription a record's chunks and the record itself may reach
# different receivers: a record whose files are still in another receiver's open batch
# is tried again (its PUBACK held) every INCOMPLETE_RETRY_SECONDS, a few of that
# batch's MAX_BATCH_SECONDS, for up to INCOMPLETE_WAIT_SECONDS; after that it is
# PUBACKed without an ack and the device re-sends it after its ack timeout, as before.
INCOMPLETE_RETRY_SECONDS = 0.1
INCOMPLETE_WAIT_SECONDS = 10.0

__all__ = ["CLIENT_ID", "list_records", "run_receiver", "signing_key_path",
           "subscription"]


def signing_key_path(config: Config) -> Path:
    """central.signing_key, or a key beside the database made on first start."""
    if config.central.signing_key:
        return Path(config.central.signing_key)
    db = Path(config.central.database)
    return db.with_name(db.name + ".ack-key")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def subscription(config: Config) -> str:
    """Every device's records topic; with central.share_group, as an MQTT v5 shared
    subscription, so that the broker hands each message to one receiver of the group
    (several receivers on one database: its uniqueness makes a redelivery to another
    receiver a duplicate, acked again, never a second row)."""
    topic = wire.records_subscription(config.mqtt.topic_prefix)
    group = config.central.share_group
    return f"$share/{group}/{topic}" if group else topic


def _topic(message: mqtt.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return repr(message._topic)  # noqa: SLF001 - the raw bytes are all there is


@dataclass
class _Batch:
    """Messages handled in the open transaction, waiting for its COMMIT.

    acks: single signed acks (devices that did not ask for batches), ready to publish;
    batched: per device, the records to acknowledge in "acks" messages, each signed
    once at flush; answers: signed "have" answers to resume queries. All of them are
    published only after the COMMIT, so none promises what a crash could still undo.
    """

    started: float
    mids: list[tuple[int, int]] = field(default_factory=list)
    acks: list[tuple[str, bytes]] = field(default_factory=list)
    batched: dict[str, list[wire.AckItem]] = field(default_factory=dict)
    answers: list[tuple[str, bytes]] = field(default_factory=list)
    # Per device, the records stored in this batch: logged once it is committed.
    stored: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Waiting:
    """A record message kept for another try: its PUBACK is held until then."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    first_seen: float
    tried: float
    # What it waits for (central_store.record_needs), worked out at the first look;
    # None: nothing to wait for (not a record, or a body that does not parse).
    needs: tuple[central_store.Need, ...] | None | Literal[False] = False


def _session_identity(cert_file: str, client_id: str) -> str:
    """Which MQTT session the broker numbers this receiver's packets in: its client id,
    and its certificate's CN when it has one (use_username_as_clientid makes the CN the
    client id, so receivers may share one configured id; without it, receivers may
    share one certificate with their own ids). Keyed by the configured id alone, two
    certificate receivers lost a receive window of identical junk from the count
    (sixth review); by the CN alone, two receivers sharing a certificate did (seventh
    review)."""
    if cert_file:
        try:
            from cryptography import x509
            from cryptography.x509.oid import NameOID

            cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if names:
                return f"cn:{names[0].value!s}/id:{client_id}"
        except (OSError, ValueError) as e:
            log.warning("cannot read the CN of %s (%s): dead letters keyed by the client "
                        "id %r", cert_file, e, client_id)
    return f"id:{client_id}"


class _Receiver:
    def __init__(self, config: Config, conn: sqlite3.Connection, stop: threading.Event,
                 notify: Notify, client_id: str) -> None:
        self.cfg = config.mqtt
        self.conn = conn
        self.stop = stop
        self.notify = notify
        self.client_id = client_id
        # Who this receiver's MQTT session is, as the broker numbers its packets: the
        # certificate's CN under use_username_as_clientid (receivers may share one
        # configured client id), else the client id. Dead letters are keyed by it, by
        # the session's epoch and by the packet id (see dead_letter).
        self.identity = _session_identity(self.cfg.cert_file, client_id)
        self.epoch = 0
        self.prefix = self.cfg.topic_prefix
        self.subscription = subscription(config)
        self.shared = bool(config.central.share_group)
        self.waiting: list[_Waiting] = []
        self.keep = False
        self.key = acksig.load_or_create_private_key(
            signing_key_path(config), held=central_store.acks_given(conn))
        self.key_id = acksig.key_id(self.key.public_key())
        self.note_key(starting=True)
        self.limits = central_store.Limits(
            max_transfers_per_device=config.central.max_transfers_per_device,
            max_chunk_store_bytes=config.central.max_chunk_store_bytes,
            chunk_expiry_seconds=config.central.chunk_expiry_seconds)
        self.purge_every = max(0.5, min(60.0, self.limits.chunk_expiry_seconds / 4))
        self.next_purge = 0.0
        self.client: mqtt.Client | None = None
        self.connected = False
        self.refusal: str | None = None
        self.dropped: str | None = None
        self.batch: _Batch | None = None
        self.handled = 0
        # When the broker last sent a QoS 1 message (or the connection was made): see
        # quiet().
        self.quiet_reconnect = config.central.quiet_reconnect_seconds
        # A group's member keeps its session briefly (central.shared_session_seconds:
        # mosquitto deals to members that are gone too), a lone receiver for a week.
        self.session_expiry = (config.central.shared_session_seconds if self.shared
                               else SESSION_EXPIRY_SECONDS)
        self.heard_at = time.monotonic()
        self.next_report = time.monotonic() + REPORT_SECONDS
        self.reported: dict[str, int] = {}
        # The broker's reason while it refuses the subscription (its SUBACK), "" once
        # granted; the packet id of the last SUBSCRIBE and when to ask again.
        self.refused = ""
        self.subscribe_mid: int | None = None
        self.next_subscribe = 0.0

    def note_key(self, *, starting: bool = False) -> None:
        """Note in the database that this key signs now (its last use, for --report);
        at start, say which key it is, and warn when devices may not believe it: a key
        new to a database that knew others, or one another key replaced since."""
        public = acksig.public_pem(self.key).decode("ascii")
        try:
            before = central_store.note_signing_key(self.conn, self.key_id, public)
        except (sqlite3.Error, CentralStoreError) as e:
            # A full disk: only --report's "last used" is late; acks are signed anyway.
            log.warning("cannot note the ack signing key's use (%s)", e)
            return
        if not starting:
            return
        log.info("signing acks with key %s", self.key_id)
        mine = next((k for k in before if k.key_id == self.key_id), None)
        others = [k for k in before if k.key_id != self.key_id]
        if mine is None and others:
            log.warning(
                "the ack signing key %s is new to this database, whose acks were signed by "
                "%s: a device believes its acks only once its mqtt.central_public_key holds "
                "it (until then each of its records is sent again, none is lost). Expected "
                "while changing keys; otherwise this receiver has the wrong [central] "
                "signing_key", self.key_id,
                ", ".join(f"{k.key_id} (last used {_when(k.last_at)})" for k in others))
        newer = [k for k in others if mine is not None and k.first_at > mine.first_at]
        if newer:
            log.warning(
                "the ack signing key %s was replaced by %s (first used %s): devices that "
                "took %s off ignore these acks, and their records wait. Is this "
                "receiver's [central] signing_key an old copy?", self.key_id,
                newer[0].key_id, _when(newer[0].first_at), self.key_id)

    def on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                   reason: mqtt.ReasonCode, props: object) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            return
        self.connected = True
        # A session the broker did not keep (a broker crash before its autosave, a
        # first start) numbers its packets from 1 again: a new epoch, so that its packet
        # ids never match the dead letters of the old one. A kept session redelivers
        # what it sent before under the same ids.
        try:
            self.epoch = central_store.session_epoch(self.conn, self.identity,
                                                     new=not flags.session_present)
        except (sqlite3.Error, CentralStoreError) as e:
            # Not written (a full disk): an epoch no dead letter has (a random negative
            # one), so a redelivery may be counted twice, never a new message left out.
            log.warning("cannot note the MQTT session's epoch (%s): a dead letter the "
                        "broker sends again may be counted twice", e)
            self.epoch = -1 - secrets.randbelow(2**31)
        # Subscribe even when the session is present: a broker killed before its
        # autosave forgets sessions, and a repeated subscription costs nothing.
        # Retained messages are never sent: devices never retain, so a retained
        # message on a records topic is junk that would come back at every subscribe.
        self.subscribe(client)
        log.info("receiver connected to %s:%d (session present: %s)", self.cfg.host,
                 self.cfg.port, flags.session_present)

    def subscribe(self, client: mqtt.Client) -> None:
        """Ask for the records subscription; on_subscribe reads the broker's answer."""
        _rc, self.subscribe_mid = client.subscribe(self.subscription, options=SubscribeOptions(
            qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))
        self.next_subscribe = time.monotonic() + SUBSCRIBE_RETRY_SECONDS

    def on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                     reason_codes: list[mqtt.ReasonCode], props: object) -> None:
        """The broker's answer for the records subscription. Refused, this receiver
        sat connected and received nothing, and said nothing: a broker that refuses
        shared subscriptions (central.share_group set) or an ACL that does not let it
        read the records topics. It says why and what to change, in the log and in
        systemd's status line, and asks again every SUBSCRIBE_RETRY_SECONDS: at the
        next connection the broker's answer is asked for again too."""
        if mid != self.subscribe_mid or not reason_codes:
            return
        code = reason_codes[0]
        if not code.is_failure:
            if self.refused:
                log.info("the broker now grants the subscription to %s", self.subscription)
                self.notify("STATUS=subscribed")
            self.refused = ""
            return
        step = ("the broker's ACL must let this receiver read the devices' records topics "
                "(see provisioning/mosquitto-acl.conf)")
        if self.shared:
            step += (", and the broker must offer MQTT v5 shared subscriptions for "
                     "central.share_group (else leave it empty and run one receiver)")
        if not self.refused:
            log.error("the broker refused the subscription to %s (%s): nothing can arrive; "
                      "%s. Asking again every %g s", self.subscription, code, step,
                      SUBSCRIBE_RETRY_SECONDS)
        self.refused = str(code)
        self.notify(f"STATUS=subscription refused by the broker ({code}): {step}")

    def on_disconnect(self, client: mqtt.Client, userdata: object,
                      flags: mqtt.DisconnectFlags, reason: mqtt.ReasonCode,
                      props: object) -> None:
        self.connected = False
        self.dropped = str(reason)

    def on_message(self, client: mqtt.Client, userdata: object,
                   message: mqtt.MQTTMessage) -> None:
        """Handle one message in the open batch; anything but a failing disk ends in a
        dead letter. Its PUBACK waits for the batch's commit."""
        now = time.monotonic()
        if message.qos:
            self.heard_at = now
        self.process(_topic(message), message.payload, message.retain, message.mid,
                     message.qos, now, redelivered=bool(message.dup))

    def process(self, topic: str, payload: bytes, retain: bool, mid: int, qos: int,
                first_seen: float, *, redelivered: bool = False) -> None:
        """on_message's work, also for a record message kept for another try."""
        device_id = wire.device_from_topic(self.prefix, topic)
        if self.batch is None:
            self.conn.execute("BEGIN IMMEDIATE")
            self.batch = _Batch(time.monotonic())
        batch = self.batch
        self.handled += 1
        self.conn.execute("SAVEPOINT message")
        self.keep = False
        try:
            if device_id is None:
                raise WireError("not a device records topic")
            if retain:
                raise WireError("retained message (devices never retain)")
            self.handle(device_id, payload, batch, first_seen)
        except (sqlite3.OperationalError, CentralStoreError):
            raise  # the disk, not the message: the batch rolls back, no PUBACK
        except (WireError, ChunkRefused, sqlite3.Error) as e:
            self.conn.execute("ROLLBACK TO message")
            self.dead_letter(topic, device_id, str(e), payload, mid, redelivered)
        except Exception as e:  # noqa: BLE001 - a bug must not become a crash loop
            log.exception("unexpected error on a message from %s", device_id)
            self.conn.execute("ROLLBACK TO message")
            self.dead_letter(topic, device_id, f"internal error: {type(e).__name__}: {e}",
                             payload, mid, redelivered)
        self.conn.execute("RELEASE message")
        if self.keep:
            self.waiting.append(_Waiting(topic, payload, mid, qos, first_seen,
                                         time.monotonic()))
        else:
            batch.mids.append((mid, qos))

    def retry_waiting(self) -> None:
        """Try again, in a batch of their own, the record messages kept for their files."""
        now = time.monotonic()
        due = [w for w in self.waiting if now - w.tried >= INCOMPLETE_RETRY_SECONDS]
        if not due:
            return
        self.waiting = [w for w in self.waiting if now - w.tried < INCOMPLETE_RETRY_SECONDS]
        for w in due:
            if now - w.first_seen < INCOMPLETE_WAIT_SECONDS and not self.files_ready(w):
                w.tried = now  # still missing: no batch, no write lock, for nothing
                self.waiting.append(w)
                continue
            self.process(w.topic, w.payload, False, w.mid, w.qos, w.first_seen)

    def files_ready(self, w: _Waiting) -> bool:
        """A plain read: are the kept record's files there now (another receiver's commit)?
        The message is decoded once for all the looks (red team 18: a record kept for
        10 s was decoded again every 0.1 s)."""
        device_id = wire.device_from_topic(self.prefix, w.topic)
        if w.needs is False:
            try:
                msg = wire.decode_device_message(w.payload)
            except WireError:
                msg = None
            w.needs = (central_store.record_needs(msg)
                       if isinstance(msg, wire.RecordMessage) else None)
        if device_id is None or w.needs is None:
            return True
        return central_store.needs_ready(self.conn, device_id, w.needs)

    def dead_letter(self, topic: str, device_id: str | None, reason: str,
                    payload: bytes, mid: int = 0, redelivered: bool = False) -> None:
        count = central_store.put_dead_letter(
            self.conn, topic, device_id, reason, payload,
            delivery=f"{self.identity}/{self.epoch}/{mid}" if mid else "",
            redelivered=redelivered)
        if count <= DEAD_LETTERS_LOGGED or count % 100 == 0:
            log.warning("dead letter #%d on %s (%d bytes): %s", count, topic[:200],
                        len(payload), reason)

    def handle(self, device_id: str, payload: bytes, batch: _Batch,
               first_seen: float = 0.0) -> None:
        """Store one device message; what to publish after the commit goes into `batch`.
        Sets self.keep for a record to try again (shared subscription, files not here)."""
        msg = wire.decode_device_message(payload)
        if isinstance(msg, wire.Chunk):
            central_store.put_chunk(self.conn, device_id, msg, self.limits)
            return
        if isinstance(msg, wire.ResumeQuery):
            have = wire.Have(device_id, msg.record_id, msg.nonce,
                             tuple((sha, count, self.first_missing(device_id, msg.record_id,
                                                                   sha, count))
                                   for sha, count in msg.files))
            batch.answers.append((wire.acks_topic(self.prefix, device_id),
                                  wire.encode_have(acksig.sign(self.key, have, self.key_id))))
            return
        if isinstance(msg, wire.RecordPack):
            # Their files came along (each in one chunk), so none is kept waiting.
            for chunk in msg.files:
                central_store.put_chunk(self.conn, device_id, chunk, self.limits)
            for record, result in zip(msg.records, central_store.put_records(
                    self.conn, device_id, msg.records), strict=True):
                self.stored(device_id, record, result, batch, first_seen)
            return
        self.stored(device_id, msg, central_store.put_record(self.conn, device_id, msg),
                    batch, first_seen)

    def stored(self, device_id: str, msg: wire.RecordMessage,
               result: central_store.RecordResult, batch: _Batch, first_seen: float) -> None:
        """What storing a record came to: its ack (alone or batched) goes out after the
        commit, or it is kept for another try."""
        if (result.outcome is central_store.Outcome.INCOMPLETE and self.shared
                and time.monotonic() - first_seen < INCOMPLETE_WAIT_SECONDS):
            self.keep = True
            return
        if result.outcome is central_store.Outcome.STORED:
            batch.stored.setdefault(device_id, []).append(msg.record_id)
        if not result.ack:
            return
        if result.outcome is central_store.Outcome.DUPLICATE:
            log.info("record %s from %s already held (%s); acknowledged again",
                     msg.record_id, device_id, result.status)
        if msg.batch:
            batch.batched.setdefault(device_id, []).append(
                wire.AckItem(msg.record_id, msg.sha256, result.status))
            return
        ack = acksig.sign(self.key, wire.Ack(msg.record_id, msg.sha256, time.time(),
                                             device_id, result.status), self.key_id)
        batch.acks.append((wire.acks_topic(self.prefix, device_id), wire.encode_ack(ack)))

    def first_missing(self, device_id: str, record_id: str, sha: str, count: int) -> int:
        """The first chunk index of this transfer not held; `count` when the file is
        stored already or every chunk is here (the device then sends none of them).

        A record body sent in chunks is named by the record's sha256: once that record
        is stored, its chunks are gone but the body is held (before, a device asking
        after a restart was told "nothing held" and sent up to 2 MB again for a
        duplicate ack)."""
        if self.conn.execute("SELECT 1 FROM files WHERE sha256=?", (sha,)).fetchone():
            return count
        if self.conn.execute("SELECT 1 FROM records WHERE device_id=? AND record_id=? AND "
                             "sha256=?", (device_id, record_id, sha)).fetchone():
            return count
        expected = 0
        for row in self.conn.execute("SELECT idx FROM chunks WHERE device_id=? AND "
                                     "file_sha256=? AND count=? ORDER BY idx",
                                     (device_id, sha, count)).fetchall():
            if row[0] != expected:
                break
            expected += 1
        return expected

    def batch_acks(self, batch: _Batch) -> list[tuple[str, bytes]]:
        """One signed "acks" message per device and MAX_BATCH_ACK_ITEMS records."""
        out = []
        now = time.time()
        for device_id, items in batch.batched.items():
            topic = wire.acks_topic(self.prefix, device_id)
            for start in range(0, len(items), wire.MAX_BATCH_ACK_ITEMS):
                signed = acksig.sign(self.key, wire.BatchAck(
                    device_id, now, tuple(items[start:start + wire.MAX_BATCH_ACK_ITEMS])),
                    self.key_id)
                out.append((topic, wire.encode_batch_ack(signed)))
        return out

    def flush(self) -> None:
        """COMMIT the batch (one fsync), then publish its acks and send its PUBACKs."""
        batch, self.batch = self.batch, None
        if batch is None:
            return
        self.conn.execute("COMMIT")
        for device_id, record_ids in batch.stored.items():
            central_store.log_stored(device_id, record_ids)
        client = self.client
        if client is None or not self.connected:
            # Committed, but this connection is gone: the broker redelivers the
            # messages (duplicates are idempotent) and the devices re-send records.
            return
        for topic, payload in (*batch.acks, *self.batch_acks(batch), *batch.answers):
            client.publish(topic, payload, qos=1)
        for mid, qos in batch.mids:
            client.ack(mid, qos)

    def abandon(self) -> None:
        """Roll the open batch back: nothing of it was promised to anyone."""
        self.batch = None
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def due(self, handled_before: int) -> bool:
        """Commit when the socket went quiet, the batch is full, or it has waited enough."""
        batch = self.batch
        return batch is not None and (
            self.handled == handled_before or len(batch.mids) >= MAX_BATCH_MESSAGES
            or time.monotonic() - batch.started >= MAX_BATCH_SECONDS)

    def purge(self) -> None:
        """Expire idle chunk transfers, and now and then log the counters."""
        now = time.monotonic()
        if now >= self.next_purge:
            self.next_purge = now + self.purge_every
            central_store.purge_expired(self.conn, self.limits.chunk_expiry_seconds)
        if now >= self.next_report:
            self.next_report = now + REPORT_SECONDS
            self.note_key()
            counts = central_store.counters(self.conn)
            if counts != self.reported:
                self.reported = counts
                log.info("receiver status: %s", ", ".join(
                    f"{name}={value}" for name, value in sorted(counts.items())))

    def connect(self) -> None:
        self.connected = False
        self.refusal = None
        self.dropped = None
        self.waiting.clear()  # their PUBACKs belong to the old connection: redelivered
        client = make_client(self.cfg, self.client_id, manual_ack=True)
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_message = self.on_message
        client.on_subscribe = self.on_subscribe
        open_session(client, self.cfg, lambda: self.connected, lambda: self.refusal,
                     max_packet=MAX_PACKET_BYTES,
                     receive_maximum=RECEIVE_MAXIMUM,
                     session_expiry=self.session_expiry)
        self.client = client
        self.heard_at = time.monotonic()

    def quiet(self) -> bool:
        """No QoS 1 message for central.quiet_reconnect_seconds: connect again.

        Why: a broker can stop sending us QoS 1 messages while the connection stays
        up. Mosquitto (2.0.11 to 2.0.18 at least) keeps one slot of our send quota for
        every message it discards as larger than our Maximum Packet Size and gives
        them back only at a new connection (our quota is our Receive Maximum), so on a
        broker that lets through messages over 64 MiB, RECEIVE_MAXIMUM of them from
        anyone who may publish on a records topic could stop this receiver for as long
        as its connection lasted. Unlike a device, a receiver cannot tell a stalled
        session from an office with nothing to send, so it reconnects when quiet: the
        session is persistent (what was queued for it comes after), and an idle office
        costs one CONNECT per period. QoS 0 messages flow past a spent
        quota, so they do not count, and neither does what waits for its files: a
        QoS 0 record kept waiting kept the receiver from ever connecting again (red
        team 19). A QoS 1 one waiting came less than INCOMPLETE_WAIT_SECONDS ago; a
        reconnect gives it back to the broker (connect() forgets what waits)."""
        return (self.batch is None
                and time.monotonic() - self.heard_at > self.quiet_reconnect)

    def run(self) -> None:
        self.notify("READY=1")
        reconnect = Reconnector(self.stop, self.notify)
        try:
            while not self.stop.is_set():
                self.notify("WATCHDOG=1")
                try:
                    if self.batch is None:
                        self.purge()
                    if self.client is None:
                        reconnect.attempt(self.connect)
                        continue
                    if self.quiet():
                        log.info("no message from the broker for %.0f s: connecting again "
                                 "(a broker may hold back messages on a connection)",
                                 time.monotonic() - self.heard_at)
                        close(self.client)
                        self.client = None
                        continue
                    if self.refused and time.monotonic() >= self.next_subscribe:
                        self.subscribe(self.client)
                    if self.batch is None and self.waiting:
                        self.retry_waiting()
                    before = self.handled
                    rc = self.client.loop(
                        timeout=IDLE_POLL_SECONDS if self.batch else
                        INCOMPLETE_RETRY_SECONDS / 2 if self.waiting else LOOP_SECONDS)
                    if self.due(before) or rc != mqtt.MQTT_ERR_SUCCESS:
                        self.flush()
                except (sqlite3.Error, CentralStoreError) as e:
                    # Raised before the batch's PUBACKs were sent: the broker keeps
                    # the messages and redelivers them once the disk works again.
                    log.error("central database error, dropping the connection: %s", e)
                    self.abandon()
                    if self.client is not None:
                        close(self.client)
                    self.client = None
                    pause(self.stop, DB_ERROR_PAUSE_SECONDS, self.notify)
                    continue
                if rc != mqtt.MQTT_ERR_SUCCESS or not self.connected:
                    log.warning("receiver lost the broker: %s",
                                self.dropped or mqtt.error_string(rc))
                    close(self.client)
                    self.client = None
        finally:
            try:
                self.flush()
            except (sqlite3.Error, CentralStoreError) as e:
                log.error("could not commit the last batch (it will be redelivered): %s", e)
                self.abandon()
            if self.client is not None:
                close(self.client)


def run_receiver(config: Config, stop: threading.Event, notify: Notify | None = None, *,
                 client_id: str = "") -> None:
    """Run until `stop` is set; config.mqtt names the broker, config.central the database
    (SQLite, or PostgreSQL with central.postgres_dsn) and the client id (central.client_id
    unless `client_id` is given)."""
    if not config.mqtt.host:
        raise BrokerUnavailable("mqtt.host is empty: the receiver needs a broker")
    # Sealed at rest with central.key_file; a wrong or missing key: exit 2 at start.
    conn = open_configured(config.central)
    try:
        _Receiver(config, conn, stop, notify or (lambda _msg: None),
                  client_id or config.central.client_id).run()
    finally:
        conn.close()
