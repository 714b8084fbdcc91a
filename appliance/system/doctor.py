"""`appliance doctor`: one line per fact a field technician needs, with the next step.

Why this exists: appliances run for years in offices with poor connectivity, and the
person in front of a broken one is a technician with a phone, not the developer. Each
check says ok, warn or fail in plain words and, when not ok, what to do next; the
exit status is 1 when anything failed so the hourly timer (appliance-doctor.timer)
leaves a failed unit that `systemctl --failed` and the central office's monitoring see.

The checks here use only the standard library and the system layer (SQLite read-only,
a socket to the broker, `scanimage -L` in a child process with a timeout, `systemctl`),
so a doctor run never holds the scanner, never writes the database and cannot hang on
a wedged backend. Checks that need upper layers (model checksums from the OCR manifest,
the schema version from the store's migrations) are passed in by the CLI as extra
``CheckFn``s, which keeps the import layers intact.

The same checks, as the same frozen ``Check`` records, are what the technician panel
shows and what sync's status heartbeat carries (``local_checks``), so the three never
disagree. Those two run where blocking is not allowed (a web request, sync's network
loop), so only the local, quick checks run there; the broker, the scanner, the
database's quick_check and the model checksums are the facts of the last full
``appliance doctor`` run (kept in ``doctor/report.json`` in the data folder, with its
time; for the scanner, the worker's own state when newer) or say "not checked here".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.system import config as config_mod
from appliance.system import crypto
from appliance.system.config import Config
from appliance.system.errors import ConfigError

if TYPE_CHECKING:
    from appliance.system.central_key import RefusedAcks

log = logging.getLogger(__name__)

# Units of a kiosk appliance, in the order a technician would look at them.
DEVICE_UNITS = (
    "appliance-web.service",
    "appliance-worker.service",
    "appliance-sync.service",
    "appliance-kiosk.service",
)
MB = 1024 * 1024
# A board without a real-time clock boots in 1970 until NTP answers; records signed
# then would carry absurd dates. Anything before this software was written is wrong.
EARLIEST_PLAUSIBLE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
QUEUE_WARN_SECONDS = 24 * 3600


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


# A message argument: a figure, a path, a command, a name; never a sentence to translate.
Param = str | int | float


@dataclass(frozen=True)
class Message:
    """A check's summary or next step for a screen: a translation key and its arguments.

    Why beside the English text and not instead of it: the command's output, the
    journal and the heartbeat stay in English (``Check.summary`` / ``next_step``,
    unchanged), while the technician panel is a screen and reads in Vietnamese or
    English. This layer has no Flask and no translation tables, so it names the text
    (``tech.doctor.summary.*`` / ``tech.doctor.next.*`` in web/translations) and hands
    over the figures (MB, days, counts), paths, addresses and error details as
    arguments, one key per kind of outcome, formatted by the face with ``str.format``
    as ``web.i18n`` does. An argument whose name ends in ``_key`` is itself a message
    key (a scanner fault, a scanner state): the face translates it and fills the
    placeholder named without the suffix (``fault_key`` -> ``{fault}``).
    """

    key: str
    # Not hashed (a dict): a Check stays hashable; equal messages still hash alike.
    args: Mapping[str, Param] = dataclasses.field(default_factory=dict, hash=False)

    @classmethod
    def from_parts(cls, key: object, args: object) -> Message | None:
        """The message as a saved report or a heartbeat carries it; None when absent or
        malformed (an older report): the face then shows the English text."""
        if not isinstance(key, str) or not key:
            return None
        if args is None:
            args = {}
        if not isinstance(args, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str | int | float) for k, v in args.items()):
            return None
        return cls(key, dict(args))


def msg(key: str, **args: Param) -> Message:
    """``Message(key, args)`` written as a call: ``msg("tech.doctor.summary.disk.free",
    free=512, path="/var/lib/appliance")``."""
    return Message(key, args)


@dataclass(frozen=True)
class Check:
    """One check's outcome: what was looked at, what was found, what to do next.

    `summary` and `next_step` are the English text the CLI prints, the journal logs and
    the heartbeat carries; `summary_msg` and `next_msg` say the same for a screen, by key
    (see ``Message``). A check without them (an older saved report, a check from a layer
    that has none) is shown with its English text.
    """

    name: str
    verdict: Verdict
    summary: str
    next_step: str = ""
    # Unix time of the `appliance doctor` run that found this, for a fact shown where
    # it cannot be looked at now (see local_checks); None: looked at just now.
    as_of: float | None = None
    summary_msg: Message | None = None
    next_msg: Message | None = None

    def to_dict(self) -> dict[str, object]:
        """The JSON form (CLI --json, the saved report, the heartbeat, the panel)."""
        return {"name": self.name, "verdict": self.verdict.value, "summary": self.summary,
                "next_step": self.next_step, "as_of": self.as_of,
                "summary_key": self.summary_msg.key if self.summary_msg else "",
                "summary_args": dict(self.summary_msg.args) if self.summary_msg else {},
                "next_key": self.next_msg.key if self.next_msg else "",
                "next_args": dict(self.next_msg.args) if self.next_msg else {}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Check:
        as_of = data.get("as_of")
        return cls(str(data["name"]), Verdict(str(data["verdict"])), str(data["summary"]),
                   str(data.get("next_step") or ""),
                   float(as_of) if isinstance(as_of, int | float) else None,
                   Message.from_parts(data.get("summary_key"), data.get("summary_args")),
                   Message.from_parts(data.get("next_key"), data.get("next_args")))


CheckFn = Callable[[Config], Check | Iterable[Check]]


# --- the checks ----------------------------------------------------------------------


def check_disk(config: Config) -> Check:
    data_dir = Path(config.paths.data_dir)
    probe = data_dir if data_dir.exists() else data_dir.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as e:
        return Check("disk", Verdict.FAIL, f"cannot read free space of {probe}: {e}",
                     "check that the data disk is mounted",
                     summary_msg=msg("tech.doctor.summary.disk.unreadable", path=str(probe),
                                     error=str(e)),
                     next_msg=msg("tech.doctor.next.disk.mount"))
    figure = f"{free // MB} MB free on {probe}"
    if free < config.health.disk_fail_mb * MB:
        return Check("disk", Verdict.FAIL, f"{figure} (below {config.health.disk_fail_mb} MB)",
                     "free space now: check the broker link so delivered dossiers can be "
                     "purged (`appliance purge`), remove old journals (`journalctl "
                     "--vacuum-size=100M`)",
                     summary_msg=msg("tech.doctor.summary.disk.below", free=free // MB,
                                     path=str(probe), limit=config.health.disk_fail_mb),
                     next_msg=msg("tech.doctor.next.disk.free_now"))
    if free < config.health.disk_warn_mb * MB:
        return Check("disk", Verdict.WARN, f"{figure} (below {config.health.disk_warn_mb} MB)",
                     "check that records are being delivered; plan a larger card or disk",
                     summary_msg=msg("tech.doctor.summary.disk.below", free=free // MB,
                                     path=str(probe), limit=config.health.disk_warn_mb),
                     next_msg=msg("tech.doctor.next.disk.plan"))
    return Check("disk", Verdict.OK, figure,
                 summary_msg=msg("tech.doctor.summary.disk.free", free=free // MB,
                                 path=str(probe)))


def open_read_only(path: Path) -> sqlite3.Connection:
    """The device database for looking only (the doctor, the CLI's schema check, sync's
    heartbeat): mode=ro never creates or migrates it, and it may be read while the
    services write (WAL readers do not block writers)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def check_database(config: Config) -> Check:
    path = config.paths.database
    if not path.exists():
        return Check("database", Verdict.WARN, f"{path} does not exist yet",
                     "start the appliance (`systemctl start appliance.target`); the first "
                     "service to start creates it",
                     summary_msg=msg("tech.doctor.summary.database.missing", path=str(path)),
                     next_msg=msg("tech.doctor.next.database.start"))
    try:
        conn = open_read_only(path)
        try:
            result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            tables = conn.execute("SELECT COUNT(*) FROM sqlite_master "
                                  "WHERE type='table'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as e:
        return Check("database", Verdict.FAIL, f"{path} cannot be read: {e}",
                     "check permissions and the disk (`dmesg`); restore from a backup if "
                     "the file is damaged",
                     summary_msg=msg("tech.doctor.summary.database.unreadable",
                                     path=str(path), error=str(e)),
                     next_msg=msg("tech.doctor.next.database.unreadable"))
    if result != ["ok"]:
        return Check("database", Verdict.FAIL, f"{path} quick_check: {'; '.join(result[:3])}",
                     "stop the appliance, copy the database aside and call support: "
                     "undelivered records may need to be recovered from it",
                     summary_msg=msg("tech.doctor.summary.database.damaged", path=str(path),
                                     detail="; ".join(result[:3])),
                     next_msg=msg("tech.doctor.next.database.damaged"))
    if not tables:
        # A 0-byte file (a failed restore, a copy onto a full disk) passes quick_check,
        # and a restart would start over on it: the records it held are elsewhere.
        return Check("database", Verdict.FAIL, f"{path} is empty ({path.stat().st_size} "
                     "bytes, no tables)",
                     "do not start the appliance on it: restore the database from a backup "
                     "or find where the copy went wrong; move the empty file aside only "
                     "for a new device",
                     summary_msg=msg("tech.doctor.summary.database.empty", path=str(path),
                                     size=path.stat().st_size),
                     next_msg=msg("tech.doctor.next.database.empty"))
    return Check("database", Verdict.OK, f"{path} quick_check ok "
                                         f"({path.stat().st_size // MB} MB)",
                 summary_msg=msg("tech.doctor.summary.database.ok", path=str(path),
                                 size=path.stat().st_size // MB))


def _stored_key_check(database: Path) -> str | None:
    if not database.exists():
        return None
    try:
        conn = open_read_only(database)
        try:
            row = conn.execute("SELECT check_value FROM key_check WHERE id=1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # no key_check table yet: nothing sealed
    return str(row[0]) if row else None


def check_key(config: Config) -> Check:
    path = config.paths.key_path
    stored = _stored_key_check(config.paths.database)
    try:
        sealer = crypto.load_sealer(path)
    except crypto.KeyProblem as e:
        # The crypto layer's reason is English; a missing file (the usual case) is said
        # in words of its own, any other reason is passed on as a detail.
        missing = not Path(path).exists()
        found = (msg("tech.doctor.summary.key.missing", path=str(path)) if missing
                 else msg("tech.doctor.summary.key.problem", error=str(e)))
        if stored is None and not config.paths.key_file:
            return Check("key", Verdict.WARN, f"{e}; nothing is sealed yet",
                         "it is made at the first start; on a real device run "
                         "`appliance keys init` at provisioning",
                         summary_msg=msg("tech.doctor.summary.key.missing_nothing_sealed",
                                         path=str(path)) if missing else
                         msg("tech.doctor.summary.key.problem_nothing_sealed", error=str(e)),
                         next_msg=msg("tech.doctor.next.key.made_at_start"))
        return Check("key", Verdict.FAIL, str(e),
                     "restore the key file from the provisioning backup; without it the "
                     "stored pages cannot be read" if stored is not None
                     else "create it: `appliance keys init`",
                     summary_msg=found,
                     next_msg=msg("tech.doctor.next.key.restore") if stored is not None
                     else msg("tech.doctor.next.key.create"))
    if stored is not None and stored != sealer.check_value:
        return Check("key", Verdict.FAIL, f"{path} is not the key the database was sealed "
                                          "with (check value differs)",
                     "put back the original key file; do not start the services until then",
                     summary_msg=msg("tech.doctor.summary.key.mismatch", path=str(path)),
                     next_msg=msg("tech.doctor.next.key.put_back"))
    what = "matches the database" if stored is not None else "present; nothing sealed yet"
    return Check("key", Verdict.OK, f"{path} {what}",
                 summary_msg=msg("tech.doctor.summary.key.matches" if stored is not None
                                 else "tech.doctor.summary.key.present", path=str(path)))


def check_queue(config: Config) -> Check:
    path = config.paths.database
    if not path.exists():
        return Check("queue", Verdict.SKIP, "no database yet",
                     summary_msg=msg("tech.doctor.summary.no_database"))
    try:
        conn = open_read_only(path)
        try:
            count, oldest = conn.execute(
                "SELECT count(*), min(created_at) FROM outbox WHERE state != 'delivered'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        return Check("queue", Verdict.WARN, f"cannot read the outbox: {e}",
                     "see the database check",
                     summary_msg=msg("tech.doctor.summary.queue.unreadable", error=str(e)),
                     next_msg=msg("tech.doctor.next.queue.see_database"))
    if not count:
        return Check("queue", Verdict.OK, "every signed record delivered",
                     summary_msg=msg("tech.doctor.summary.queue.delivered"))
    age = max(0.0, time.time() - float(oldest))
    summary = f"{count} record(s) waiting, oldest {age / 3600:.1f} h"
    minutes = int(age // 60)
    waiting = msg("tech.doctor.summary.queue.waiting", count=int(count),
                  hours=minutes // 60, minutes=minutes % 60)
    if age > QUEUE_WARN_SECONDS:
        return Check("queue", Verdict.WARN, summary,
                     "check the broker check below and the office's Internet link; records "
                     "stay safe on the device until delivered",
                     summary_msg=waiting, next_msg=msg("tech.doctor.next.queue.waiting"))
    return Check("queue", Verdict.OK, summary, summary_msg=waiting)


def check_clock(config: Config) -> Check:
    del config
    now = time.time()
    if now < EARLIEST_PLAUSIBLE:
        day = f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%d}"
        return Check("clock", Verdict.FAIL,
                     f"system time {day} is "
                     "before 2026", "connect the network for NTP or set the time: "
                                    "`timedatectl set-time 'YYYY-MM-DD HH:MM'`",
                     summary_msg=msg("tech.doctor.summary.clock.too_early", date=day),
                     next_msg=msg("tech.doctor.next.clock.set"))
    synced = _systemctl_like(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    stamp = f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%d %H:%M} UTC"
    if synced == "no":
        return Check("clock", Verdict.WARN, f"{stamp}, not synchronised with NTP",
                     "allow NTP (UDP 123) out of the office network, or check "
                     "`timedatectl timesync-status`",
                     summary_msg=msg("tech.doctor.summary.clock.not_synced", time=stamp),
                     next_msg=msg("tech.doctor.next.clock.ntp"))
    return Check("clock", Verdict.OK, stamp + (", NTP synchronised" if synced == "yes" else ""),
                 summary_msg=msg("tech.doctor.summary.clock.synced" if synced == "yes"
                                 else "tech.doctor.summary.clock.time", time=stamp))


def _certificate_days_left(cert_file: str) -> float:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    return (cert.not_valid_after_utc.timestamp() - time.time()) / 86400


# Where `appliance provision install-cert` keeps the device's certificate: beside the
# configuration file, `tls/current` pointing at the generation in use (provision.pki).
PROVISION_CERT = Path("tls") / "current" / "device.crt"


def config_path_of(config_path: str | os.PathLike[str] | None) -> Path:
    """The configuration file `config_mod.load` reads for this argument."""
    if config_path:
        return Path(config_path)
    named = os.environ.get(config_mod.CONFIG_ENV)
    return Path(named) if named else config_mod.DEFAULT_CONFIG_PATH


def _one_certificate(cert_file: str, warn_days: int) -> Check:
    try:
        days = _certificate_days_left(cert_file)
    except (OSError, ValueError) as e:
        return Check("certificate", Verdict.FAIL, f"{cert_file}: {e}",
                     "install the signed certificate again: `appliance provision "
                     "install-cert CERT --ca CA`",
                     summary_msg=msg("tech.doctor.summary.certificate.unreadable",
                                     path=cert_file, error=str(e)),
                     next_msg=msg("tech.doctor.next.certificate.install_again"))
    # round(), like the "{:.0f}" of the English text: the same whole number of days.
    if days < 0:
        return Check("certificate", Verdict.FAIL, f"{cert_file} expired {-days:.0f} day(s) ago",
                     "renew: `appliance provision renew`, get the CSR signed, then "
                     "`appliance provision install-cert CERT --ca CA`",
                     summary_msg=msg("tech.doctor.summary.certificate.expired",
                                     path=cert_file, days=round(-days)),
                     next_msg=msg("tech.doctor.next.certificate.renew"))
    if days < warn_days:
        return Check("certificate", Verdict.WARN, f"{cert_file} expires in {days:.0f} day(s)",
                     "renew now: `appliance provision renew`, get the CSR signed, then "
                     "`appliance provision install-cert CERT --ca CA` (the current one "
                     "stays in use until then)",
                     summary_msg=msg("tech.doctor.summary.certificate.expires",
                                     path=cert_file, days=round(days)),
                     next_msg=msg("tech.doctor.next.certificate.renew_now"))
    return Check("certificate", Verdict.OK, f"{cert_file} valid for {days:.0f} more day(s)",
                 summary_msg=msg("tech.doctor.summary.certificate.valid", path=cert_file,
                                 days=round(days)))


def check_certificate(config: Config, provisioned: Path | None = None) -> Check:
    """The device certificate: the one sync uses (mqtt.cert_file) and the one
    `appliance provision` installed (`provisioned`, tls/current/device.crt beside the
    configuration), when that is another file: a certificate installed but not yet
    configured still expires. The worst of them is reported."""
    files = [config.mqtt.cert_file] if config.mqtt.cert_file else []
    if provisioned is not None and provisioned.exists() and not any(
            Path(f).resolve() == provisioned.resolve() for f in files):
        files.append(str(provisioned))
    if not files:
        return Check("certificate", Verdict.SKIP, "no device certificate configured "
                                                  "(mqtt.cert_file) or provisioned",
                     summary_msg=msg("tech.doctor.summary.certificate.none"))
    found = [_one_certificate(f, config.health.cert_warn_days) for f in files]
    order = (Verdict.FAIL, Verdict.WARN, Verdict.OK)
    return min(found, key=lambda c: order.index(c.verdict))


def check_central_key(config: Config) -> Check:
    """The central office keys this device believes acks from (mqtt.central_public_key):
    their ids, so that before the office switches to a new key it can see, in each
    device's status heartbeat, that the device already believes it."""
    m = config.mqtt
    if not m.central_public_key:
        if not m.host:
            return Check("central_key", Verdict.SKIP, "no broker configured (mqtt.host)",
                         summary_msg=msg("tech.doctor.summary.central_key.no_broker"))
        return Check("central_key", Verdict.WARN,
                     "mqtt.central_public_key is not set: acks are believed without a "
                     "signature check",
                     "install the central office's public key file and set [mqtt] "
                     "central_public_key in /etc/appliance/appliance.toml",
                     summary_msg=msg("tech.doctor.summary.central_key.not_set"),
                     next_msg=msg("tech.doctor.next.central_key.install",
                                  path="/etc/appliance/appliance.toml"))
    # Loaded here only: `cryptography` is big, and most checks do not need it.
    from appliance.system import central_key

    path = m.central_public_key
    try:
        keys = central_key.load(Path(path))
    except central_key.CentralKeyError as e:
        return Check("central_key", Verdict.FAIL, str(e),
                     "install the central office's public key file again; until then sync "
                     "does not start and records wait on the device",
                     summary_msg=msg("tech.doctor.summary.central_key.unusable", path=path,
                                     error=str(e)),
                     next_msg=msg("tech.doctor.next.central_key.install_again"))
    believed = [central_key.key_id(k) for k in keys]
    ids = ", ".join(believed)
    said = f"{path}: acks believed from {len(keys)} key(s): {ids}"
    refused, since = _refused_acks_since(config, Path(path), believed)
    forged = refused.count
    # Every id kept, most named first, with how many refused acks named each: the kid
    # is unsigned, so which one is the office's is for the office to say, not us.
    shown = sorted(((k, v) for k, v in refused.keys.items() if k not in believed),
                   key=lambda item: (-item[1][0], -item[1][1], item[0]))
    named = ", ".join(f"{kid} ({count})" for kid, (count, _at) in shown)
    if named and refused.more:
        named += f", … (+{refused.more})"
    if forged and named:
        # The refused acks named keys this device lacks (a hint outside the signature,
        # which a forger may write too): most likely the office's new key, not added
        # here, named by every ack the office sends again.
        day = f"{dt.datetime.fromtimestamp(since, dt.UTC):%Y-%m-%d %H:%M} UTC"
        return Check("central_key", Verdict.WARN,
                     f"{said}; {forged} ack(s) since {day} were signed by none of them, "
                     f"some naming key {named}",
                     f"if the id of the central office's new key is among {named}, add "
                     "the key: `appliance provision central-key --add NEW.pub`; otherwise "
                     "someone is sending forged acknowledgements: tell the central office",
                     summary_msg=msg("tech.doctor.summary.central_key.refused_acks_named",
                                     path=path, count=len(keys), ids=ids, forged=forged,
                                     since=day, named=named),
                     next_msg=msg("tech.doctor.next.central_key.add_named", named=named))
    if forged:
        # A device that missed the office's new key refuses every ack as forged and
        # delivers nothing, while its file reads fine (red team 14): said here, so the
        # panel and the heartbeat show it. Forged acks of an attacker look the same.
        day = f"{dt.datetime.fromtimestamp(since, dt.UTC):%Y-%m-%d %H:%M} UTC"
        return Check("central_key", Verdict.WARN,
                     f"{said}; {forged} ack(s) since {day} were signed by none of them",
                     "if the central office changed its key, add the new one: `appliance "
                     "provision central-key --add NEW.pub`; otherwise someone is sending "
                     "forged acknowledgements: tell the central office",
                     summary_msg=msg("tech.doctor.summary.central_key.refused_acks",
                                     path=path, count=len(keys), ids=ids, forged=forged,
                                     since=day),
                     next_msg=msg("tech.doctor.next.central_key.add_new"))
    return Check("central_key", Verdict.OK, said,
                 summary_msg=msg("tech.doctor.summary.central_key.believed", path=path,
                                 count=len(keys), ids=ids))


def _refused_acks_since(config: Config, key_file: Path,
                        believed: list[str]) -> tuple[RefusedAcks, float]:
    """The acks sync refused as forged that still concern the keys `believed` now, and
    since when: nothing refused when none or the database cannot be read.

    What sync counted (central_key.REFUSED_ACKS_STATE_KEY, with the keys it believed
    and the file's ctime in ns as sync read it), as RefusedAcks.under keeps it for the
    keys believed now: a chmod of the file keeps the WARN. Other keys believed start
    the count afresh, so an `--add` of a key other than the one the refused acks named
    shows OK until the office's next ack is refused (red team 19, pinned): the named
    ids are unsigned, and keeping them across a change of keys let an old flood of
    made-up ids hide the office's new key (red team 16). Not the dead-letter rows since the
    ctime: a junk flood trims them, and a key file switched by symlink has the ctime
    of a file written before the acks it now answers (red team 17). Only a database
    whose sync never wrote that count (before this release) is read by its rows."""
    from appliance.system.central_key import REFUSED_ACKS_STATE_KEY, RefusedAcks, refused_acks

    try:
        stat = key_file.stat()
    except OSError:
        return RefusedAcks(), 0.0
    since = stat.st_ctime
    database = config.paths.database
    if not database.exists():
        return RefusedAcks(), since
    try:
        conn = open_read_only(database)
        try:
            state = conn.execute("SELECT value FROM device_state WHERE key=?",
                                 (REFUSED_ACKS_STATE_KEY,)).fetchone()
            rows = None if state else conn.execute(
                "SELECT COUNT(*) FROM sync_dead_letters WHERE kind='forged' AND at > ?",
                (since,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return RefusedAcks(), since
    if state is None:
        return RefusedAcks(count=int(rows[0]) if rows else 0), since
    counted = refused_acks(str(state[0]))
    if counted is None:
        return RefusedAcks(), since
    counted = counted.under(believed, stat.st_ctime_ns)
    return counted, (counted.since / 1e9 if counted.count else since)


def check_broker(config: Config) -> Check:
    m = config.mqtt
    if not m.host:
        return Check("broker", Verdict.WARN, "no broker configured (mqtt.host): records wait "
                                             "on the device",
                     "set [mqtt] host (and TLS files) in /etc/appliance/appliance.toml",
                     summary_msg=msg("tech.doctor.summary.broker.none"),
                     next_msg=msg("tech.doctor.next.broker.configure",
                                  path="/etc/appliance/appliance.toml"))
    timeout = config.health.broker_timeout_seconds
    where = f"{m.host}:{m.port}"
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout) as sock:
            if m.tls:
                context = ssl.create_default_context(cafile=m.ca_file or None)
                if m.cert_file:
                    context.load_cert_chain(m.cert_file, m.key_file or None)
                with context.wrap_socket(sock, server_hostname=m.host):
                    pass
    except ssl.SSLError as e:
        return Check("broker", Verdict.FAIL, f"{where}: TLS refused: {e.reason or e}",
                     "check mqtt.ca_file, the device certificate and the clock",
                     summary_msg=msg("tech.doctor.summary.broker.tls_refused", address=where,
                                     error=str(e.reason or e)),
                     next_msg=msg("tech.doctor.next.broker.tls"))
    except OSError as e:
        return Check("broker", Verdict.WARN, f"{where} unreachable: {e}",
                     "check the office's Internet link and firewall; records wait safely",
                     summary_msg=msg("tech.doctor.summary.broker.unreachable", address=where,
                                     error=str(e)),
                     next_msg=msg("tech.doctor.next.broker.link"))
    return Check("broker", Verdict.OK, f"{where} reachable" + (" (TLS)" if m.tls else ""),
                 summary_msg=msg("tech.doctor.summary.broker.reachable_tls" if m.tls
                                 else "tech.doctor.summary.broker.reachable", address=where))


# A listed scanner as `scanimage` prints it: SANE name, vendor, model, type.
Listed = tuple[str, str, str, str]
# Finds the listed device a `wanted` value (SANE name or stable identity) means; the
# CLI passes scanner.device.resolve_device's matching, which this layer cannot import.
ScannerResolver = Callable[[str, Sequence[Listed]], str | None]
CHOSEN_SCANNER_KEY = "scanner.chosen"  # store.state.StateKey.SCANNER_CHOSEN


def exact_name(wanted: str, devices: Sequence[Listed]) -> str | None:
    """The resolver without identities: the device listed under exactly that name."""
    return wanted if any(d[0] == wanted for d in devices) else None


def chosen_scanner(config: Config) -> str:
    """The scanner the technician chose on the panel (its stable identity), or ''.

    Read straight from the device_state table, read-only, like the other checks:
    it is what the worker opens (store.state.chosen_scanner), ahead of scanner.device.
    """
    path = config.paths.database
    if not path.exists():
        return ""
    try:
        conn = open_read_only(path)
        try:
            row = conn.execute("SELECT value FROM device_state WHERE key = ?",
                               (CHOSEN_SCANNER_KEY,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


def scanner_label(wanted: str) -> str:
    """'Vendor Model (serial)' for a stored identity, the value itself otherwise."""
    from urllib.parse import parse_qsl

    if not wanted.startswith("scanner:"):
        return wanted
    fields = dict(parse_qsl(wanted[len("scanner:"):]))
    label = " ".join(p for p in (fields.get("vendor", ""), fields.get("model", "")) if p)
    return (label or wanted) + (f" ({fields['serial']})" if fields.get("serial") else "")


def check_scanner(config: Config, resolve: ScannerResolver = exact_name) -> Check:
    """Whether SANE lists the scanner the worker will open: the one chosen on the
    technician panel, else scanner.device, else any."""
    scanimage = shutil.which("scanimage")
    if scanimage is None:
        return Check("scanner", Verdict.FAIL, "scanimage missing (package sane-utils)",
                     "reinstall: bash provisioning/install.sh install",
                     summary_msg=msg("tech.doctor.summary.scanner.no_scanimage"),
                     next_msg=msg("tech.doctor.next.scanner.reinstall"))
    env = dict(os.environ)
    if config.scanner.sane_config_dir:
        env["SANE_CONFIG_DIR"] = config.scanner.sane_config_dir
    timeout = config.health.scanner_timeout_seconds
    try:
        done = subprocess.run([scanimage, "--formatted-device-list=%d\t%v\t%m\t%t%n"],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return Check("scanner", Verdict.FAIL, f"SANE did not list scanners in {timeout:g} s",
                     "unplug and replug the scanner, power-cycle it, then run the doctor again",
                     summary_msg=msg("tech.doctor.summary.scanner.timeout",
                                     seconds=f"{timeout:g}"),
                     next_msg=msg("tech.doctor.next.scanner.replug"))
    # With none found, scanimage prints a paragraph of advice instead; a SANE device
    # name always has a backend prefix ("airscan:e0:Office", "fujitsu:libusb:001:004").
    devices: list[Listed] = []
    for line in done.stdout.splitlines():
        parts = line.strip().split("\t")
        if len(parts) == 4 and ":" in parts[0] and " " not in parts[0].split(":", 1)[0]:
            devices.append((parts[0], parts[1], parts[2], parts[3]))
    chosen = chosen_scanner(config)
    wanted = chosen or config.scanner.device
    if wanted:
        what = (f"chosen scanner {scanner_label(chosen)}" if chosen
                else f"{wanted} (scanner.device)")
        scanner = scanner_label(chosen) if chosen else wanted
        found = resolve(wanted, devices)
        if found is not None:
            return Check("scanner", Verdict.OK, f"{what} found as {found}",
                         summary_msg=msg("tech.doctor.summary.scanner.chosen_found" if chosen
                                         else "tech.doctor.summary.scanner.configured_found",
                                         scanner=scanner, found=found))
        return Check("scanner", Verdict.FAIL, f"{what} not found ({len(devices)} other "
                                              "device(s))",
                     "check the cable and power; for a network scanner its address in "
                     "airscan.conf; or choose another one on the technician panel "
                     "(`appliance scanner list` shows what SANE sees)",
                     summary_msg=msg("tech.doctor.summary.scanner.chosen_missing" if chosen
                                     else "tech.doctor.summary.scanner.configured_missing",
                                     scanner=scanner, count=len(devices)),
                     next_msg=msg("tech.doctor.next.scanner.missing"))
    if not devices:
        return Check("scanner", Verdict.WARN, "no scanner found",
                     "connect and switch on the scanner; `appliance scanner list`",
                     summary_msg=msg("tech.doctor.summary.scanner.none"),
                     next_msg=msg("tech.doctor.next.scanner.connect"))
    names = ", ".join(d[0] for d in devices[:3])
    return Check("scanner", Verdict.OK, f"{len(devices)} scanner(s): {names}",
                 summary_msg=msg("tech.doctor.summary.scanner.listed", count=len(devices),
                                 names=names))


def under_systemd() -> bool:
    """True when this machine's PID 1 is systemd (sd_booted's test)."""
    return Path("/run/systemd/system").is_dir()


def _systemctl_like(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check_units(config: Config, units: Sequence[str] = DEVICE_UNITS) -> list[Check]:
    del config
    if not under_systemd():
        return [Check("units", Verdict.SKIP, "not running under systemd",
                      summary_msg=msg("tech.doctor.summary.unit.no_systemd"))]
    out = []
    for unit in units:
        shown = _systemctl_like(["systemctl", "show", unit, "--property",
                                 "LoadState,ActiveState,SubState,NRestarts,ConditionResult"])
        props = dict(line.split("=", 1) for line in (shown or "").splitlines() if "=" in line)
        name = f"unit {unit.removesuffix('.service')}"
        state = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
        restarts = int(props.get("NRestarts", "0") or 0)
        # systemd's own words (active, failed, running) stay as systemctl prints them.
        said = msg("tech.doctor.summary.unit.state", state=state)
        if props.get("LoadState") == "not-found":
            out.append(Check(name, Verdict.SKIP, "not installed",
                             summary_msg=msg("tech.doctor.summary.unit.not_installed")))
        elif props.get("ActiveState") == "inactive" and props.get("ConditionResult") == "no":
            # e.g. the kiosk screen on a box without a display (ConditionPathExists=).
            out.append(Check(name, Verdict.SKIP, "not started: its condition is not met "
                                                 f"(`systemctl status {unit}`)",
                             summary_msg=msg("tech.doctor.summary.unit.condition_not_met",
                                             unit=unit)))
        elif props.get("ActiveState") == "failed":
            out.append(Check(name, Verdict.FAIL, state,
                             f"`journalctl -u {unit} -n 50` for the cause, then "
                             f"`systemctl restart {unit}`",
                             summary_msg=said,
                             next_msg=msg("tech.doctor.next.unit.failed", unit=unit)))
        elif props.get("ActiveState") != "active":
            out.append(Check(name, Verdict.WARN, state, f"`systemctl start {unit}`",
                             summary_msg=said,
                             next_msg=msg("tech.doctor.next.unit.start", unit=unit)))
        elif restarts:
            out.append(Check(name, Verdict.WARN, f"{state}, restarted {restarts} time(s)",
                             f"`journalctl -u {unit}` for why it keeps restarting",
                             summary_msg=msg("tech.doctor.summary.unit.restarted",
                                             state=state, count=restarts),
                             next_msg=msg("tech.doctor.next.unit.restarting", unit=unit)))
        else:
            out.append(Check(name, Verdict.OK, state, summary_msg=said))
    return out


SYSTEM_CHECKS: dict[str, CheckFn] = {
    "disk": check_disk,
    "database": check_database,
    "key": check_key,
    "queue": check_queue,
    "clock": check_clock,
    "certificate": check_certificate,
    "central_key": check_central_key,
    "broker": check_broker,
    "scanner": check_scanner,
    "units": check_units,
}


# --- running and printing ------------------------------------------------------------

# The configuration loaded: the first line of every round (the command, the panel).
CONFIG_VALID = Check("config", Verdict.OK, "valid",
                     summary_msg=msg("tech.doctor.summary.config.valid"))


def run_checks(config_path: str | os.PathLike[str] | None,
               extra: dict[str, CheckFn] | None = None,
               skip: Iterable[str] = (), *, save: bool = False) -> list[Check]:
    """Load the configuration, then every check not skipped, in a fixed order.

    A check that raises is reported as its own failure: the doctor must finish its round
    even when one part of the device is broken in a way nobody foresaw. `save` keeps
    the round in the data folder for the panel and the heartbeat (``local_checks``);
    the lines of skipped checks stay as the last round that ran them found them.
    """
    skip = tuple(skip)
    try:
        config = config_mod.load(config_path)
    except ConfigError as e:
        return [Check("config", Verdict.FAIL, str(e),
                      "fix that key (`appliance config reference`), then "
                      "`appliance config check`",
                      summary_msg=msg("tech.doctor.summary.config.invalid", error=str(e)),
                      next_msg=msg("tech.doctor.next.config.fix"))]
    fns = {**SYSTEM_CHECKS, **(extra or {})}
    fns["certificate"] = functools.partial(
        check_certificate, provisioned=config_path_of(config_path).parent / PROVISION_CERT)
    checks = [CONFIG_VALID, *check_all(config, fns, skip)]
    if save:
        save_report(config, checks, keep=skip)
    return checks


def check_all(config: Config, fns: Mapping[str, CheckFn], skip: Iterable[str] = ()
              ) -> list[Check]:
    """Run `fns` in order on a loaded configuration, a raising check becoming a failure."""
    skipped = set(skip)
    checks: list[Check] = []
    for name, fn in fns.items():
        if name in skipped:
            continue
        try:
            found = fn(config)
        except Exception as e:  # noqa: BLE001 - reported, never fatal (see docstring)
            found = Check(name, Verdict.FAIL, f"the check itself failed: {e!r}",
                          "report this to support with the output of `appliance doctor`",
                          summary_msg=msg("tech.doctor.summary.check_failed", error=repr(e)),
                          next_msg=msg("tech.doctor.next.report_to_support"))
        checks.extend([found] if isinstance(found, Check) else found)
    return checks


# --- the same facts where blocking is not allowed ----------------------------------

# Local and quick: no network, no scanner, no full read of the database or the models.
# Safe inside a web request and beside sync's network loop.
LOCAL_CHECKS = frozenset({"disk", "key", "queue", "clock", "certificate", "central_key",
                          "units"})
# In a folder of its own: appliance-doctor.service sees the data folder read-only and
# gets this one writable (StateDirectory=appliance/doctor).
REPORT_DIR = "doctor"
REPORT_NAME = "report.json"


def report_path(config: Config) -> Path:
    return Path(config.paths.data_dir) / REPORT_DIR / REPORT_NAME


def save_report(config: Config, checks: Sequence[Check], now: float | None = None,
                keep: Iterable[str] = ()) -> None:
    """Keep this round (atomically) for ``local_checks``, each line with its time; the
    lines of the checks named in `keep` (skipped this round, e.g. the hourly timer's
    scanner) stay as an earlier round found them. A read-only or full disk only costs
    the panel its last-known facts, so it is logged, never raised."""
    at = time.time() if now is None else now
    path = report_path(config)
    if not path.parent.parent.is_dir():
        return  # no data folder yet (nothing started): the doctor does not make one
    kept = set(keep)
    earlier = [c for c in load_report(config) if c.name in kept]
    lines = [dataclasses.replace(c, as_of=at) for c in checks] + earlier
    body = json.dumps({"at": at, "checks": [c.to_dict() for c in lines]},
                      ensure_ascii=False)
    tmp = path.with_name(f".{REPORT_NAME}.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o750, exist_ok=True)
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not keep the doctor's report in %s: %s", path, e)
        tmp.unlink(missing_ok=True)


def load_report(config: Config) -> list[Check]:
    """The saved lines, each stamped with the time of the round that found it; [] if
    none or unreadable."""
    try:
        data = json.loads(report_path(config).read_text(encoding="utf-8"))
        at = float(data["at"])
        found = [Check.from_dict(c) for c in data["checks"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        if not isinstance(e, FileNotFoundError):
            log.warning("unreadable doctor report %s: %s", report_path(config), e)
        return []
    return [c if c.as_of is not None else dataclasses.replace(c, as_of=at) for c in found]


SCANNER_STATE_KEYS = ("scanner.state", "scanner.error")  # store.state.StateKey


def check_scanner_state(config: Config) -> Check | None:
    """The scanner as the worker last found it when it opened it (store.state), read-only:
    the panel and the heartbeat never list the scanner themselves (the web never opens
    it, and a listing may disturb a scan). None when the worker has not said yet."""
    path = config.paths.database
    if not path.exists():
        return None
    try:
        conn = open_read_only(path)
        try:
            found = dict((k, (v, at)) for k, v, at in conn.execute(
                "SELECT key, value, updated_at FROM device_state WHERE key IN (?, ?)",
                SCANNER_STATE_KEYS))
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if "scanner.state" not in found:
        return None
    value, at = found["scanner.state"]
    chosen = chosen_scanner(config)
    named = scanner_label(chosen) if chosen else config.scanner.device
    label = named or "the first scanner SANE lists"
    # The state as the status screens name it (store.state.ScannerState).
    state_key = (f"state.scanner.{value}" if value in ("ready", "busy")
                 else "state.scanner.unknown")
    if value == "error":
        fault = found.get("scanner.error", ("scanner.error", at))[0]
        return Check("scanner", Verdict.FAIL, f"{label}: the worker's last use failed "
                                              f"({fault})",
                     "technician panel, scanner: search, choose it again and run a test "
                     "scan; `appliance doctor` shows whether SANE lists it",
                     as_of=float(at),
                     # fault_key: the fault's own message key, translated by the face.
                     summary_msg=msg("tech.doctor.summary.scanner.worker_failed",
                                     scanner=named, fault_key=str(fault)) if named else
                     msg("tech.doctor.summary.scanner.worker_failed_first",
                         fault_key=str(fault)),
                     next_msg=msg("tech.doctor.next.scanner.test_scan"))
    return Check("scanner", Verdict.OK, f"{label}: {value} when the worker last used it",
                 as_of=float(at),
                 summary_msg=msg("tech.doctor.summary.scanner.worker_used",
                                 scanner=named, state_key=state_key) if named else
                 msg("tech.doctor.summary.scanner.worker_used_first", state_key=state_key))


def local_checks(config: Config, provisioned: Path | None = None,
                 known: Mapping[str, Check] | None = None) -> list[Check]:
    """What the panel shows and the heartbeat carries, in `appliance doctor`'s order.

    The local checks run now; every other one (broker, scanner, database, models,
    schema) is `known` (e.g. sync knows its broker connection), else the last saved
    `appliance doctor` round's line with its time (for the scanner, the worker's state
    when that is newer), else a SKIP "not checked here".
    """
    fns: dict[str, CheckFn] = {name: fn for name, fn in SYSTEM_CHECKS.items()
                               if name in LOCAL_CHECKS}
    fns["certificate"] = functools.partial(check_certificate, provisioned=provisioned)
    live = {name: check_all(config, {name: fn}) for name, fn in fns.items()}
    remembered: dict[str, list[Check]] = {}
    for c in load_report(config):
        if c.name != "config" and not c.name.startswith("unit "):
            remembered.setdefault(c.name, []).append(c)
    # The scanner: the newer of the doctor's listing and the worker's own use of it.
    worker = check_scanner_state(config)
    if worker is not None and all((c.as_of or 0.0) < (worker.as_of or 0.0)
                                  for c in remembered.get("scanner", [])):
        remembered["scanner"] = [worker]
    out = [CONFIG_VALID]
    for name in [*SYSTEM_CHECKS, *[n for n in remembered if n not in SYSTEM_CHECKS]]:
        if name in live:
            out.extend(live[name])
        elif known and name in known:
            out.append(known[name])
        elif name in remembered:
            out.extend(remembered[name])
        else:
            out.append(Check(name, Verdict.SKIP, "not checked here",
                             "run `appliance doctor` on the device",
                             summary_msg=msg("tech.doctor.summary.not_checked_here"),
                             next_msg=msg("tech.doctor.next.run_doctor")))
    return out


def worst(checks: Sequence[Check]) -> Verdict:
    """FAIL if any failed, else WARN if any warned, else OK (skips do not count)."""
    verdicts = {c.verdict for c in checks}
    return next((v for v in (Verdict.FAIL, Verdict.WARN) if v in verdicts), Verdict.OK)


def exit_code(checks: Sequence[Check]) -> int:
    return 1 if any(c.verdict is Verdict.FAIL for c in checks) else 0


def render(checks: Sequence[Check], *, quiet: bool = False) -> str:
    """One aligned line per check, the next step indented under it; quiet: problems only."""
    shown = [c for c in checks if not quiet or c.verdict in (Verdict.WARN, Verdict.FAIL)]
    width = max((len(c.name) for c in shown), default=0)
    lines = []
    for c in shown:
        lines.append(f"{c.verdict.value:<4}  {c.name:<{width}}  {c.summary}")
        if c.next_step and c.verdict is not Verdict.OK:
            lines.append(f"{'':<4}  {'':<{width}}  -> {c.next_step}")
    if not quiet:
        lines.append(f"verdict: {worst(checks).value.upper()}")
    return "\n".join(lines)


def to_json(checks: Sequence[Check]) -> str:
    return json.dumps({"ok": exit_code(checks) == 0,
                       "checks": [c.to_dict() for c in checks]}, ensure_ascii=False, indent=2)
