"""The appliance's configuration: one TOML file checked against a schema at start.

Every format the regulations leave open (dossier code, result code, retention) lives
here with a sourced default, because the governing texts changed in 2025-2026 and a
field technician must be able to follow a new circular without a software release.
A bad file is refused at start with an error that names the key, never half-applied.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from appliance.system.errors import ConfigError
from appliance.system.text import one_line

# The smallest mqtt.chunk_bytes a device may cut files with. The receiver relies on it:
# a chunk count above what a file cut this finely could need is refused (sync.wire).
MIN_CHUNK_BYTES = 1024
# central.share_group is a secret (see CentralConfig.share_group): at least this long,
# i.e. 64 random bits written in hex, so that it cannot be guessed.
MIN_SHARE_GROUP_CHARS = 16

CONFIG_ENV = "APPLIANCE_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/appliance/appliance.toml")

# QCVN 102:2016 agency code, e.g. 000.00.12.H42 (13 characters).
AGENCY_CODE_RE = re.compile(r"^[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[0-9A-Z]{3}\Z")
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")


@dataclass(frozen=True)
class DeviceConfig:
    """Who this appliance is: the office it serves and its share of the code space."""

    # This device's name in records, MQTT topics and the central office's lists:
    # lower-case letters, digits and '-', 2-63 characters, unique in the fleet.
    id: str = "kiosk-01"
    # QCVN 102:2016 code of the office (NNN.NN.NN.XNN, upper case), the first part of
    # every dossier code.
    agency_code: str = "000.00.12.H42"
    # The office's name as printed on receipts and shown on the screens.
    agency_name: str = "Bảo hiểm xã hội quận Ba Đình"
    # Several kiosks of one office share an agency code and day; each gets its own
    # slice of the 4-digit sequence so codes never collide without talking to each other.
    sequence_first: int = 1
    # Last number of this kiosk's slice; 1 <= sequence_first <= sequence_last <= 9999.
    sequence_last: int = 9999


@dataclass(frozen=True)
class PathsConfig:
    """Where the appliance keeps its state."""

    # The database (appliance.sqlite3) and the sealed file store (files/) live here;
    # the systemd units allow writes to /var/lib/appliance only.
    data_dir: str = "/var/lib/appliance"
    # The AES-GCM key that seals pages, PDFs and personal fields at rest (root-only file,
    # made at provisioning). Empty: appliance.key in data_dir, made on the first start
    # when no encrypted data exists yet (the demo); a path named here must exist.
    key_file: str = ""

    @property
    def database(self) -> Path:
        return Path(self.data_dir) / "appliance.sqlite3"

    @property
    def key_path(self) -> Path:
        return Path(self.key_file) if self.key_file else Path(self.data_dir) / "appliance.key"

    @property
    def files(self) -> Path:
        return Path(self.data_dir) / "files"


@dataclass(frozen=True)
class WebConfig:
    """The screens (kiosk, officer, technician) served by gunicorn."""

    # host:port gunicorn listens on; the kiosk browser and its policy expect
    # 127.0.0.1:8000. Opening it to the LAN also needs the web unit's IPAddressAllow=.
    bind: str = "127.0.0.1:8000"
    # Request threads of the one gunicorn worker process.
    threads: int = 4
    # Seconds without a touch after which the kiosk wipes the citizen's session.
    idle_reset_seconds: int = 120
    # Language of a fresh kiosk session: "vi" or "en".
    default_language: str = "vi"
    # Empty: officer screens open without a PIN (demo); set one on every real device.
    officer_pin: str = ""
    technician_pin: str = ""  # empty: the officer PIN also opens the technician screens


@dataclass(frozen=True)
class ScannerConfig:
    """The document scanner, opened by the worker only."""

    # SANE device name; empty means "the first device SANE lists".
    device: str = ""
    # SANE_CONFIG_DIR for the worker (e.g. /etc/appliance/sane); empty: SANE's own.
    sane_config_dir: str = ""
    # Scan resolution in dpi; Decree 30/2020 requires at least 200.
    resolution: int = 200
    # SANE scan mode, as the backend names it ("Color", "Gray", "Lineart").
    mode: str = "Color"


@dataclass(frozen=True)
class OcrConfig:
    """Text recognition of scanned pages (onnxruntime)."""

    # false: pages are stored and sent without OCR; officers type the fields.
    enabled: bool = True
    # onnxruntime intra-op threads; the number of CPU cores the worker may use.
    threads: int = 2
    # Recognizer model variant: "int8" (smaller, faster) or "fp32".
    recognizer: str = "int8"


@dataclass(frozen=True)
class MqttConfig:
    """The link to the central office: an MQTT broker."""

    # Empty host: no broker configured; records wait in SQLite until one is.
    host: str = ""
    # Broker port, 1-65535 (1883 plain, 8883 for TLS by convention).
    port: int = 1883
    # true: TLS to the broker (ca_file names the CA that signed the broker).
    tls: bool = False
    # PEM CA certificate(s) trusted for the broker; empty: the system's CAs.
    ca_file: str = ""
    # PEM client certificate of this device, for mutual TLS; empty: none.
    cert_file: str = ""
    # PEM private key of cert_file (made on the device, never leaves it).
    key_file: str = ""
    # First level of every topic the device publishes and subscribes to.
    topic_prefix: str = "bhxh"
    # MQTT keepalive in seconds: how soon a dead link is noticed.
    keepalive: int = 30
    # Seconds to wait for the receiver's acknowledgement before a record is retried.
    ack_timeout_seconds: float = 10.0
    # Acks overdue and no answer from the receiver for this long on one connection:
    # sync connects again (a broker may hold back messages on a live connection),
    # then waits twice as long before the next such reconnect, up to 15 minutes.
    stall_reconnect_seconds: float = 60.0
    # 120,000 bytes: a chunk message plus topic and MQTT header stays inside a broker
    # that caps messages at 128 KB (AWS IoT Core), counted as 128,000 or 131,072 bytes.
    # Not less: each message costs the device, the broker and the receiver a fixed
    # amount of work (paho's MQTT 5 properties alone): with 64 KiB a 1 MB scan was 22
    # messages, now 9 in binary chunks (receiver CPU per scan -15 % for this alone).
    chunk_bytes: int = 120_000
    # PEM Ed25519 public key (or certificate) of the central receiver, installed at
    # provisioning. Set: only acks signed by it mark records delivered. While the
    # central office changes keys the file holds both (PEM blocks one after another,
    # at most 8): acks signed by either are believed. Empty (demo, tests without
    # keys): acks are believed on their sha256 alone, with a warning.
    central_public_key: str = ""


@dataclass(frozen=True)
class CodesConfig:
    """Code formats: Circular 01/2018/TT-VPCP Art. 19 for the dossier code; the result
    code's structure was not found in any published text, so its template is a guess
    an operator can override."""

    # Dossier code template; fields {agency}, {yymmdd}, {seq}.
    dossier: str = "{agency}-{yymmdd}-{seq:04d}"
    # Result code template, one per paper; fields {dossier_code}, {ordinal}.
    result: str = "{dossier_code}.{ordinal:02d}"


@dataclass(frozen=True)
class CentralConfig:
    """The reference receiver that stands in for BHXH's central software."""

    # The receiver's SQLite database (its unit may write /var/lib/appliance-central).
    database: str = "/var/lib/appliance-central/central.sqlite3"
    # PEM Ed25519 key that signs acks; empty: <database>.ack-key, made on first start
    # with its public half beside it (<database>.ack-key.pub) for the devices. Made
    # only for a new database: once acks were given, a missing key is refused.
    signing_key: str = ""
    # Incomplete chunk transfers idle this long are purged (a device re-sends them), and
    # so are files sent whole that no stored record has named for this long.
    chunk_expiry_seconds: float = 86400.0
    # Files being assembled at once per device, and chunk bytes held in all.
    max_transfers_per_device: int = 64
    # Chunk bytes held for all devices together before new transfers are refused;
    # files sent whole that no record names yet count too (each with 256 bytes more).
    max_chunk_store_bytes: int = 2 * 1024 * 1024 * 1024
    # AES-GCM key sealing what the receiver stores (record bodies, files, chunks).
    # Empty: <database>.key, made on the first start when the database holds no data.
    key_file: str = ""
    # PostgreSQL instead of SQLite: a libpq URL such as
    # postgresql://central@db.example/central?sslmode=verify-full (psycopg 3). Empty:
    # SQLite at central.database. Several receivers may share one PostgreSQL; they then
    # need the same key_file and signing_key (defaults are still named after database).
    postgres_dsn: str = ""
    # MQTT client id of this receiver (its persistent session). Several receivers
    # sharing a subscription each need their own (`appliance central --client-id`).
    client_id: str = "appliance-central"
    # MQTT v5 shared subscription group: non-empty makes the receiver subscribe to
    # $share/<group>/<prefix>/devices/+/records, so the broker spreads the devices'
    # messages over every receiver of the group. Empty: an ordinary subscription.
    # A secret: mosquitto's acl_file checks deliveries, not subscriptions, so a device
    # that knew the name could join the group and take its turn of every device's
    # messages, which the broker then drops (read ACL) until their devices send again.
    share_group: str = ""
    # With no QoS 1 message from the broker for this long, the receiver connects again
    # (its session is kept, nothing is lost): a broker can stop sending on a live
    # connection (mosquitto keeps a send slot for each message it discards as too
    # large for the receiver). An idle office costs one reconnect per period.
    quiet_reconnect_seconds: float = 300.0
    # With share_group: how long the broker keeps this receiver's session once its
    # connection is gone. Long enough for a restart (systemd's is 5 s), which gets back
    # what it had in flight; short, because mosquitto deals a group's messages to every
    # member with a session, connected or not, and a receiver left down held back its
    # share of every device's records until each one's ack timeout. What a session
    # that ends holds, the devices send again. Without share_group the session is kept
    # a week: what devices send while a lone receiver is down waits at the broker.
    shared_session_seconds: int = 60

    @property
    def key_path(self) -> Path:
        return Path(self.key_file) if self.key_file else Path(self.database + ".key")


@dataclass(frozen=True)
class RetentionConfig:
    """How long local copies stay after the central office acknowledged them.

    Only delivered and acknowledged dossiers are ever purged (their images, PDFs and
    personal fields; codes, hashes and the audit trail stay). The period is not fixed
    by any text found (regulations.md: unconfirmed), hence configuration.
    """

    # Days after the central office's acknowledgement before the local copies of a
    # dossier are purged (`appliance purge`, daily timer); 0 or more.
    delivered_days: int = 30
    # Days after a dossier was cancelled (left at the kiosk, or returned to the citizen
    # by an officer) and last touched before its pages, PDFs and fields are purged: it
    # was never digitized nor sent, so nothing else ever removes them; 0 or more.
    cancelled_days: int = 30


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of `appliance doctor` (run by a technician and by an hourly timer)."""

    # Free space on the data disk below which the doctor warns: scans keep arriving
    # while the link is down, and the outbox must never meet a full disk.
    disk_warn_mb: int = 2048
    # Free space below which the doctor fails (and the technician must act at once).
    disk_fail_mb: int = 512
    # Free space on the data disk below which the kiosk refuses new scans (with the
    # disk-full message) and the worker leaves queued scans waiting: what is already
    # scanned and queued must still fit (its PDF, its outbox record). 0: never refuse.
    scan_min_free_mb: int = 256
    # Seconds the doctor waits for SANE to list scanners before calling it unreachable.
    scanner_timeout_seconds: float = 20.0
    # Seconds the doctor waits for the broker's TCP (and TLS) handshake.
    broker_timeout_seconds: float = 5.0
    # Days before the device certificate (mqtt.cert_file) expires when the doctor
    # starts warning; renewal takes a visit or a CSR round trip.
    cert_warn_days: int = 30


@dataclass(frozen=True)
class RecordsConfig:
    """The officer's signature on each paper's result PDF (records/pdfsign.py).

    Nothing set: the device signs with its own key and self-signed certificate, made
    in data_dir/signing on the first sign-off; an office installs an issued one.
    """

    # PEM private key, or a PKCS#12 file (.p12/.pfx) holding key and certificate.
    signing_key: str = ""
    # PEM or DER certificate of signing_key (or of the token's key); needed with a
    # PEM key; with a token, empty means "the certificate stored on the token".
    signing_cert: str = ""
    # Passphrase of signing_key; empty: the key is not encrypted.
    signing_passphrase: str = ""
    # PKCS#11 module of a signing token (e.g. /usr/lib/softhsm/libsofthsm2.so);
    # set: the token signs and signing_key is not used.
    pkcs11_module: str = ""
    # Label of the token to use; empty: the first token found.
    pkcs11_token: str = ""
    # Label of the private key on the token.
    pkcs11_key: str = ""
    # User PIN of the token.
    pkcs11_pin: str = ""
    # Largest signed record body (characters of its JSON) sign-off accepts: the sync
    # service's wire limit (512 KiB, sync/wire.py MAX_BODY_BYTES), which a record over
    # it could never cross. A dossier whose record would be larger (many papers, a
    # long audit trail) is refused at sign-off (error.record_too_large), nothing issued.
    max_record_chars: int = 524288


@dataclass(frozen=True)
class PrinterConfig:
    """The receipt printer. The kiosk browser never prints (its policy turns printing
    and print dialogs off); the web service prints the receipt PDF through CUPS."""

    # CUPS queue for kiosk receipts (`lpstat -p` lists them); empty: no printer, and
    # the receipt's Print button is not shown.
    queue: str = ""
    # The print command, split into words like a shell would (no shell runs it), with
    # {queue}, {file} and {title} filled in.
    command: str = "lp -d {queue} -t {title} -- {file}"
    # Seconds the print command may take before the kiosk says the printer failed.
    timeout_seconds: float = 15.0
    # Copies of one receipt a kiosk session may print (a second tap wastes no paper).
    copies_per_receipt: int = 2


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    codes: CodesConfig = field(default_factory=CodesConfig)
    central: CentralConfig = field(default_factory=CentralConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    printer: PrinterConfig = field(default_factory=PrinterConfig)


# How a value's type is named in errors and in the generated reference.
TYPE_WORDS: dict[type, str] = {str: "a string", int: "an integer", float: "a number",
                               bool: "true or false"}


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        # Name what is allowed there, and the likely intended key: a technician on the
        # phone with a typo should not need the reference to fix it.
        import difflib  # only for the message of a bad file, not every start

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{key}: unknown key{hint} "
                          f"(expected one of: {', '.join(f.name for f in fields(cls))})")
    values: dict[str, Any] = {}
    for name, raw in data.items():
        key = f"{where}.{name}" if where else name
        want = hints[name]
        if is_dataclass(want):
            values[name] = _build(want, raw, key)
            continue
        if want is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if want is bool and not isinstance(raw, bool):
            raise ConfigError(f"{key}: expected true or false, got {raw!r}")
        if want is int and (isinstance(raw, bool) or not isinstance(raw, int)):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}")
        if not isinstance(raw, want):
            raise ConfigError(f"{key}: expected {TYPE_WORDS.get(want, want.__name__)}, "
                              f"got {raw!r}")
        values[name] = raw
    return cls(**values)


def seconds_from_env(name: str, default: float) -> float:
    """A pace that tests starting a service may shorten through the environment (a
    retry, a recovery pass, a read limit); never set in production. Anything but a
    finite number of seconds above 0 is ignored, so a stray value cannot stop a
    service at import."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default

def validate(config: Config) -> Config:
    d = config.device
    if not DEVICE_ID_RE.match(d.id):
        raise ConfigError(f"device.id: {d.id!r} must be lower-case letters, digits and '-'")
    if not AGENCY_CODE_RE.match(d.agency_code):
        raise ConfigError(
            f"device.agency_code: {d.agency_code!r} is not a QCVN 102:2016 code like 000.00.12.H42"
        )
    if not 1 <= d.sequence_first <= d.sequence_last <= 9999:
        raise ConfigError("device.sequence_first/sequence_last: need 1 <= first <= last <= 9999")
    if config.web.default_language not in ("vi", "en"):
        raise ConfigError("web.default_language: must be 'vi' or 'en'")
    if config.scanner.resolution < 200:
        raise ConfigError("scanner.resolution: Decree 30/2020 requires at least 200 dpi")
    if config.ocr.recognizer not in ("int8", "fp32"):
        raise ConfigError("ocr.recognizer: must be 'int8' or 'fp32'")
    if config.central.share_group and not re.fullmatch(
            rf"[A-Za-z0-9_-]{{{MIN_SHARE_GROUP_CHARS},64}}", config.central.share_group):
        raise ConfigError(
            f"central.share_group: {MIN_SHARE_GROUP_CHARS} to 64 letters, digits, '-' or '_', "
            "a random name kept secret like a key (e.g. `openssl rand -hex 16`): a device "
            "that knows it can join the group, and mosquitto drops the messages it deals "
            "that device")
    if config.central.postgres_dsn and not config.central.postgres_dsn.startswith(
            ("postgresql://", "postgres://")):
        raise ConfigError("central.postgres_dsn: must be a postgresql:// URL")
    if not 1 <= config.mqtt.port <= 65535:
        raise ConfigError("mqtt.port: must be 1-65535")
    if config.mqtt.chunk_bytes < MIN_CHUNK_BYTES:
        raise ConfigError(f"mqtt.chunk_bytes: must be at least {MIN_CHUNK_BYTES}")
    h = config.health
    if not 0 <= h.disk_fail_mb <= h.disk_warn_mb:
        raise ConfigError("health.disk_fail_mb/disk_warn_mb: need 0 <= fail <= warn")
    if h.scan_min_free_mb < 0:
        raise ConfigError("health.scan_min_free_mb: must be 0 or more")
    if h.scanner_timeout_seconds <= 0 or h.broker_timeout_seconds <= 0:
        raise ConfigError("health.scanner_timeout_seconds/broker_timeout_seconds: "
                          "must be more than 0")
    if config.retention.delivered_days < 0:
        raise ConfigError("retention.delivered_days: must be 0 or more")
    if config.retention.cancelled_days < 0:
        raise ConfigError("retention.cancelled_days: must be 0 or more")
    p = config.printer
    if p.timeout_seconds <= 0 or p.copies_per_receipt < 1:
        raise ConfigError("printer.timeout_seconds/copies_per_receipt: must be more than 0")
    if p.queue and "{file}" not in p.command:
        raise ConfigError("printer.command: must name the receipt as {file}")
    rec = config.records
    if (rec.signing_key and not rec.pkcs11_module and not rec.signing_cert
            and not rec.signing_key.lower().endswith((".p12", ".pfx"))):
        raise ConfigError("records.signing_cert: required with a PEM records.signing_key")
    if rec.max_record_chars < 4096:
        raise ConfigError("records.max_record_chars: must be at least 4096")
    _check_ranges(config)
    _check_code_templates(config.codes, d.agency_code)
    # The agency's name is printed on every result PDF and carried in every record:
    # in NFC, whatever the editor of appliance.toml typed (see system/text.py).
    name = one_line(d.agency_name)
    if not name:
        raise ConfigError("device.agency_name: must not be empty")
    if name != d.agency_name:
        config = replace(config, device=replace(d, agency_name=name))
    return config


def _check_ranges(config: Config) -> None:
    """What a service would otherwise trip over while running, not at start: an MQTT
    keepalive beyond 16 bits escaped sync as a struct.error, no request thread made
    gunicorn crash-loop, a NaN timeout passed every `<= 0` test (so, first, no number
    anywhere may be NaN or infinite)."""
    for section in fields(config):
        values = getattr(config, section.name)
        for f in fields(values):
            value = getattr(values, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{section.name}.{f.name}: must be a finite number")
    m, w, c = config.mqtt, config.web, config.central
    for key, ok, need in (
            ("mqtt.keepalive", 0 <= m.keepalive <= 65535, "0-65535 seconds"),
            ("mqtt.ack_timeout_seconds", m.ack_timeout_seconds > 0, "more than 0"),
            ("mqtt.stall_reconnect_seconds", m.stall_reconnect_seconds > 0, "more than 0"),
            ("web.threads", w.threads >= 1, "1 or more"),
            ("web.idle_reset_seconds", w.idle_reset_seconds >= 0, "0 or more"),
            ("ocr.threads", config.ocr.threads >= 0, "0 or more"),
            ("central.max_transfers_per_device", c.max_transfers_per_device >= 1,
             "1 or more"),
            ("central.max_chunk_store_bytes", c.max_chunk_store_bytes >= 1, "1 or more"),
            ("central.chunk_expiry_seconds", c.chunk_expiry_seconds > 0, "more than 0"),
            ("central.quiet_reconnect_seconds", c.quiet_reconnect_seconds > 0,
             "more than 0"),
            ("central.shared_session_seconds", 0 <= c.shared_session_seconds <= 86400,
             "0-86400")):
        if not ok:
            raise ConfigError(f"{key}: must be {need}")
    host, sep, port = w.bind.rpartition(":")
    if w.bind.startswith("unix:") and len(w.bind) > len("unix:"):
        pass  # a Unix socket path, as gunicorn takes it
    elif not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"web.bind: {w.bind!r} must be host:port with a port 0-65535 "
                          "(0: any free one)")


# What a code may be made of: it names files (export, archive) and is printed in QR
# codes, so nothing that could climb out of a folder or split a path.
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_code_templates(codes: CodesConfig, agency: str) -> None:
    """Each template must make safe codes that differ from one dossier (or paper) to
    the next. Before, `{dossier_code}-KQ` gave every paper of a dossier one result code
    (sign-off of any two-paper dossier then died on the UNIQUE index), and
    `../{dossier_code}` made the export write a citizen's papers outside its folder."""
    def made(key: str, template: str, **values: Any) -> str:
        try:
            code = template.format(**values)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:
            raise ConfigError(f"{key}: bad template {template!r}: {e}") from e
        if not CODE_RE.fullmatch(code) or ".." in code:
            raise ConfigError(f"{key}: template {template!r} makes {code!r}; a code is "
                              "letters, digits, '.', '-' and '_' only, with no '..'")
        return code

    first, second = (made("codes.dossier", codes.dossier, agency=agency, yymmdd="261127",
                          seq=seq) for seq in (1, 2))
    if first == second:
        raise ConfigError(f"codes.dossier: template {codes.dossier!r} must use {{seq}}: "
                          "every dossier of a day would get the same code")
    one, two = (made("codes.result", codes.result, dossier_code=first, ordinal=n)
                for n in (1, 2))
    if one == two:
        raise ConfigError(f"codes.result: template {codes.result!r} must use {{ordinal}}: "
                          "every paper of a dossier would get the same result code")


def from_mapping(data: dict[str, Any]) -> Config:
    return validate(_build(Config, data, ""))


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config named by the argument, $APPLIANCE_CONFIG, or the default path.

    A missing default file means "built-in defaults" so a fresh install runs at once;
    a file someone named explicitly must exist.
    """
    explicit = path or os.environ.get(CONFIG_ENV)
    target = Path(explicit) if explicit else DEFAULT_CONFIG_PATH
    # A link that leads nowhere (or in a loop) is a file someone meant to be there:
    # read (and refused), never taken for "no file" and the built-in defaults.
    if not target.exists() and not target.is_symlink():
        if explicit:
            raise ConfigError(f"{target}: configuration file not found")
        return validate(Config())
    return from_mapping(_read_toml(target))


def _read_toml(target: Path) -> dict[str, Any]:
    """The file's TOML, or one ConfigError saying why not: a directory, a file the
    service may not read or a broken link is the technician's to fix, like bad TOML
    (before, those left every service with a traceback instead of exit 2). A UTF-8
    byte order mark (Windows Notepad writes one) is read past."""
    try:
        text = target.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{target}: not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{target}: cannot be read: {e.strerror or e}") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{target}: not valid TOML: {e}") from e


def problems(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Every problem of a configuration file as (key, message), for the technician
    panel: `load` stops at the first bad key, a technician fixing a file wants them all.

    Each key is checked on its own (unknown key, wrong type), then, when every key
    is well-formed, the rules between keys (`validate`). An unreadable or non-TOML
    file is one problem with the key ''.
    """
    try:
        data = _read_toml(Path(path))
    except ConfigError as e:
        return [("", str(e))]
    found: list[tuple[str, str]] = []
    hints = get_type_hints(Config)
    for name, raw in data.items():
        if name in hints and isinstance(raw, dict):
            checks = [(hints[name], {key: value}, name) for key, value in raw.items()]
        else:
            checks = [(Config, {name: raw}, "")]
        for cls, part, where in checks:
            try:
                _build(cls, part, where)
            except ConfigError as e:
                found.append(_by_key(e))
    if not found:
        try:
            from_mapping(data)
        except ConfigError as e:
            found.append(_by_key(e))
    return found


def _by_key(error: ConfigError) -> tuple[str, str]:
    key, sep, rest = str(error).partition(": ")
    return (key, rest) if sep and " " not in key else ("", str(error))


def with_overrides(config: Config, **sections: dict[str, Any]) -> Config:
    """Return a copy with some keys of some sections replaced (used by tests and the demo)."""
    changed = {name: replace(getattr(config, name), **values) for name, values in sections.items()}
    return validate(replace(config, **changed))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + "".join(_toml_char(c) for c in str(value)) + '"'


def _toml_char(c: str) -> str:
    # TOML basic strings forbid raw control characters (a pasted agency name with a
    # line break would otherwise make dump() write a file load() refuses).
    if c == '"' or c == "\\":
        return "\\" + c
    # Also every other line break Unicode knows (U+0085, U+2028, U+2029) and the C1
    # controls: TOML allows them raw, but line-based tools (the provisioning editor
    # among them, before) cut the line there and leave a file that does not parse.
    if c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029":
        return f"\\u{ord(c):04x}"
    return c


def dump(config: Config) -> str:
    """Serialise to TOML so a parent process can hand its exact config to children."""
    out: list[str] = []
    for section in fields(config):
        out.append(f"[{section.name}]")
        sub = getattr(config, section.name)
        for f in fields(sub):
            out.append(f"{f.name} = {_toml_value(getattr(sub, f.name))}")
        out.append("")
    return "\n".join(out)
