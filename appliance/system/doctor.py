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

from appliance.system import config as config_mod
from appliance.system import crypto
from appliance.system.config import Config
from appliance.system.errors import ConfigError

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


@dataclass(frozen=True)
class Check:
    """One check's outcome: what was looked at, what was found, what to do next."""

    name: str
    verdict: Verdict
    summary: str
    next_step: str = ""
    # Unix time of the `appliance doctor` run that found this, for a fact shown where
    # it cannot be looked at now (see local_checks); None: looked at just now.
    as_of: float | None = None

    def to_dict(self) -> dict[str, object]:
        """The JSON form (CLI --json, the saved report, the heartbeat, the panel)."""
        return {"name": self.name, "verdict": self.verdict.value, "summary": self.summary,
                "next_step": self.next_step, "as_of": self.as_of}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Check:
        as_of = data.get("as_of")
        return cls(str(data["name"]), Verdict(str(data["verdict"])), str(data["summary"]),
                   str(data.get("next_step") or ""),
                   float(as_of) if isinstance(as_of, int | float) else None)


CheckFn = Callable[[Config], Check | Iterable[Check]]


# --- the checks ----------------------------------------------------------------------


def check_disk(config: Config) -> Check:
    data_dir = Path(config.paths.data_dir)
    probe = data_dir if data_dir.exists() else data_dir.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as e:
        return Check("disk", Verdict.FAIL, f"cannot read free space of {probe}: {e}",
                     "check that the data disk is mounted")
    figure = f"{free // MB} MB free on {probe}"
    if free < config.health.disk_fail_mb * MB:
        return Check("disk", Verdict.FAIL, f"{figure} (below {config.health.disk_fail_mb} MB)",
                     "free space now: check the broker link so delivered dossiers can be "
                     "purged (`appliance purge`), remove old journals (`journalctl "
                     "--vacuum-size=100M`)")
    if free < config.health.disk_warn_mb * MB:
        return Check("disk", Verdict.WARN, f"{figure} (below {config.health.disk_warn_mb} MB)",
                     "check that records are being delivered; plan a larger card or disk")
    return Check("disk", Verdict.OK, figure)


def _open_read_only(path: Path) -> sqlite3.Connection:
    # mode=ro: a doctor never creates or migrates a database; it may run while the
    # services write (WAL readers do not block writers).
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def check_database(config: Config) -> Check:
    path = config.paths.database
    if not path.exists():
        return Check("database", Verdict.WARN, f"{path} does not exist yet",
                     "start the appliance (`systemctl start appliance.target`); the first "
                     "service to start creates it")
    try:
        conn = _open_read_only(path)
        try:
            result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            tables = conn.execute("SELECT COUNT(*) FROM sqlite_master "
                                  "WHERE type='table'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as e:
        return Check("database", Verdict.FAIL, f"{path} cannot be read: {e}",
                     "check permissions and the disk (`dmesg`); restore from a backup if "
                     "the file is damaged")
    if result != ["ok"]:
        return Check("database", Verdict.FAIL, f"{path} quick_check: {'; '.join(result[:3])}",
                     "stop the appliance, copy the database aside and call support: "
                     "undelivered records may need to be recovered from it")
    if not tables:
        # A 0-byte file (a failed restore, a copy onto a full disk) passes quick_check,
        # and a restart would start over on it: the records it held are elsewhere.
        return Check("database", Verdict.FAIL, f"{path} is empty ({path.stat().st_size} "
                     "bytes, no tables)",
                     "do not start the appliance on it: restore the database from a backup "
                     "or find where the copy went wrong; move the empty file aside only "
                     "for a new device")
    return Check("database", Verdict.OK, f"{path} quick_check ok "
                                         f"({path.stat().st_size // MB} MB)")


def _stored_key_check(database: Path) -> str | None:
    if not database.exists():
        return None
    try:
        conn = _open_read_only(database)
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
        if stored is None and not config.paths.key_file:
            return Check("key", Verdict.WARN, f"{e}; nothing is sealed yet",
                         "it is made at the first start; on a real device run "
                         "`appliance keys init` at provisioning")
        return Check("key", Verdict.FAIL, str(e),
                     "restore the key file from the provisioning backup; without it the "
                     "stored pages cannot be read" if stored is not None
                     else "create it: `appliance keys init`")
    if stored is not None and stored != sealer.check_value:
        return Check("key", Verdict.FAIL, f"{path} is not the key the database was sealed "
                                          "with (check value differs)",
                     "put back the original key file; do not start the services until then")
    what = "matches the database" if stored is not None else "present; nothing sealed yet"
    return Check("key", Verdict.OK, f"{path} {what}")


def check_queue(config: Config) -> Check:
    path = config.paths.database
    if not path.exists():
        return Check("queue", Verdict.SKIP, "no database yet")
    try:
        conn = _open_read_only(path)
        try:
            count, oldest = conn.execute(
                "SELECT count(*), min(created_at) FROM outbox WHERE state != 'delivered'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        return Check("queue", Verdict.WARN, f"cannot read the outbox: {e}",
                     "see the database check")
    if not count:
        return Check("queue", Verdict.OK, "every signed record delivered")
    age = max(0.0, time.time() - float(oldest))
    summary = f"{count} record(s) waiting, oldest {age / 3600:.1f} h"
    if age > QUEUE_WARN_SECONDS:
        return Check("queue", Verdict.WARN, summary,
                     "check the broker check below and the office's Internet link; records "
                     "stay safe on the device until delivered")
    return Check("queue", Verdict.OK, summary)


def check_clock(config: Config) -> Check:
    del config
    now = time.time()
    if now < EARLIEST_PLAUSIBLE:
        return Check("clock", Verdict.FAIL,
                     f"system time {dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%d} is "
                     "before 2026", "connect the network for NTP or set the time: "
                                    "`timedatectl set-time 'YYYY-MM-DD HH:MM'`")
    synced = _systemctl_like(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    stamp = f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%d %H:%M} UTC"
    if synced == "no":
        return Check("clock", Verdict.WARN, f"{stamp}, not synchronised with NTP",
                     "allow NTP (UDP 123) out of the office network, or check "
                     "`timedatectl timesync-status`")
    return Check("clock", Verdict.OK, stamp + (", NTP synchronised" if synced == "yes" else ""))


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
                     "install-cert CERT --ca CA`")
    if days < 0:
        return Check("certificate", Verdict.FAIL, f"{cert_file} expired {-days:.0f} day(s) ago",
                     "renew: `appliance provision renew`, get the CSR signed, then "
                     "`appliance provision install-cert CERT --ca CA`")
    if days < warn_days:
        return Check("certificate", Verdict.WARN, f"{cert_file} expires in {days:.0f} day(s)",
                     "renew now: `appliance provision renew`, get the CSR signed, then "
                     "`appliance provision install-cert CERT --ca CA` (the current one "
                     "stays in use until then)")
    return Check("certificate", Verdict.OK, f"{cert_file} valid for {days:.0f} more day(s)")


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
                                                  "(mqtt.cert_file) or provisioned")
    found = [_one_certificate(f, config.health.cert_warn_days) for f in files]
    order = (Verdict.FAIL, Verdict.WARN, Verdict.OK)
    return min(found, key=lambda c: order.index(c.verdict))


def check_broker(config: Config) -> Check:
    m = config.mqtt
    if not m.host:
        return Check("broker", Verdict.WARN, "no broker configured (mqtt.host): records wait "
                                             "on the device",
                     "set [mqtt] host (and TLS files) in /etc/appliance/appliance.toml")
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
                     "check mqtt.ca_file, the device certificate and the clock")
    except OSError as e:
        return Check("broker", Verdict.WARN, f"{where} unreachable: {e}",
                     "check the office's Internet link and firewall; records wait safely")
    return Check("broker", Verdict.OK, f"{where} reachable" + (" (TLS)" if m.tls else ""))


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
        conn = _open_read_only(path)
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
                     "reinstall: bash provisioning/install.sh install")
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
                     "unplug and replug the scanner, power-cycle it, then run the doctor again")
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
        found = resolve(wanted, devices)
        if found is not None:
            return Check("scanner", Verdict.OK, f"{what} found as {found}")
        return Check("scanner", Verdict.FAIL, f"{what} not found ({len(devices)} other "
                                              "device(s))",
                     "check the cable and power; for a network scanner its address in "
                     "airscan.conf; or choose another one on the technician panel "
                     "(`appliance scanner list` shows what SANE sees)")
    if not devices:
        return Check("scanner", Verdict.WARN, "no scanner found",
                     "connect and switch on the scanner; `appliance scanner list`")
    names = ", ".join(d[0] for d in devices[:3])
    return Check("scanner", Verdict.OK, f"{len(devices)} scanner(s): {names}")


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
        return [Check("units", Verdict.SKIP, "not running under systemd")]
    out = []
    for unit in units:
        shown = _systemctl_like(["systemctl", "show", unit, "--property",
                                 "LoadState,ActiveState,SubState,NRestarts,ConditionResult"])
        props = dict(line.split("=", 1) for line in (shown or "").splitlines() if "=" in line)
        name = f"unit {unit.removesuffix('.service')}"
        state = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
        restarts = int(props.get("NRestarts", "0") or 0)
        if props.get("LoadState") == "not-found":
            out.append(Check(name, Verdict.SKIP, "not installed"))
        elif props.get("ActiveState") == "inactive" and props.get("ConditionResult") == "no":
            # e.g. the kiosk screen on a box without a display (ConditionPathExists=).
            out.append(Check(name, Verdict.SKIP, "not started: its condition is not met "
                                                 f"(`systemctl status {unit}`)"))
        elif props.get("ActiveState") == "failed":
            out.append(Check(name, Verdict.FAIL, state,
                             f"`journalctl -u {unit} -n 50` for the cause, then "
                             f"`systemctl restart {unit}`"))
        elif props.get("ActiveState") != "active":
            out.append(Check(name, Verdict.WARN, state, f"`systemctl start {unit}`"))
        elif restarts:
            out.append(Check(name, Verdict.WARN, f"{state}, restarted {restarts} time(s)",
                             f"`journalctl -u {unit}` for why it keeps restarting"))
        else:
            out.append(Check(name, Verdict.OK, state))
    return out


SYSTEM_CHECKS: dict[str, CheckFn] = {
    "disk": check_disk,
    "database": check_database,
    "key": check_key,
    "queue": check_queue,
    "clock": check_clock,
    "certificate": check_certificate,
    "broker": check_broker,
    "scanner": check_scanner,
    "units": check_units,
}


# --- running and printing ------------------------------------------------------------


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
                      "`appliance config check`")]
    fns = {**SYSTEM_CHECKS, **(extra or {})}
    fns["certificate"] = functools.partial(
        check_certificate, provisioned=config_path_of(config_path).parent / PROVISION_CERT)
    checks = [Check("config", Verdict.OK, "valid"), *check_all(config, fns, skip)]
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
                          "report this to support with the output of `appliance doctor`")
        checks.extend([found] if isinstance(found, Check) else found)
    return checks


# --- the same facts where blocking is not allowed ----------------------------------

# Local and quick: no network, no scanner, no full read of the database or the models.
# Safe inside a web request and beside sync's network loop.
LOCAL_CHECKS = frozenset({"disk", "key", "queue", "clock", "certificate", "units"})
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
        conn = _open_read_only(path)
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
    label = (scanner_label(chosen) if chosen else config.scanner.device
             or "the first scanner SANE lists")
    if value == "error":
        fault = found.get("scanner.error", ("scanner.error", at))[0]
        return Check("scanner", Verdict.FAIL, f"{label}: the worker's last use failed "
                                              f"({fault})",
                     "technician panel, scanner: search, choose it again and run a test "
                     "scan; `appliance doctor` shows whether SANE lists it",
                     as_of=float(at))
    return Check("scanner", Verdict.OK, f"{label}: {value} when the worker last used it",
                 as_of=float(at))


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
    out = [Check("config", Verdict.OK, "valid")]
    for name in [*SYSTEM_CHECKS, *[n for n in remembered if n not in SYSTEM_CHECKS]]:
        if name in live:
            out.extend(live[name])
        elif known and name in known:
            out.append(known[name])
        elif name in remembered:
            out.extend(remembered[name])
        else:
            out.append(Check(name, Verdict.SKIP, "not checked here",
                             "run `appliance doctor` on the device"))
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
