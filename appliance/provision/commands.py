"""The `appliance provision …` steps, each re-runnable, each ending in its verdict.

A step prints one doctor-style line (ok/warn/fail, what was found, the next step) and
records it in ``<dir>/provision-report.json``; `appliance provision report` prints
every step's last verdict (``--json`` for the central office's tooling) with the
certificate's expiry checked again at that moment. Re-running a step is harmless:
identity rewrites the same keys, key keeps an existing key unless ``--rotate``,
install-cert of the installed certificate changes nothing, officer add of the same
name and PIN is a no-op.

``<dir>`` (``--dir``) is the folder of the configuration file by default
(/etc/appliance): the key, CSRs and certificates live in ``<dir>/tls`` (pki.py).
Configuration keys a step sets are written into the TOML file in place (tomledit.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from appliance.provision import pki
from appliance.provision.errors import ProvisionError
from appliance.provision.tomledit import set_keys
from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.doctor import Check, Verdict, exit_code, render
from appliance.system.errors import ConfigError

REPORT_NAME = "provision-report.json"
DEFAULT_OWNER = "appliance"
# The order of the report: the order a technician goes through them.
STEPS: tuple[tuple[str, str, bool], ...] = (
    # (name in the report, command that makes it, required for a working device)
    ("identity", "identity --agency CODE --device ID", True),
    ("key", "key", True),
    ("certificate", "install-cert CERT --ca CA", True),
    ("scanner", "scanner", True),
    ("models", "models", True),
    ("broker", "broker --host HOST --port 8883", True),
    ("central_key", "central-key FILE", True),
    ("officers", "officer add NAME", False),
    ("renewal", "renew", False),
)


class Context:
    """Where this provisioning run reads and writes: config file, folder, service user."""

    def __init__(self, args: argparse.Namespace) -> None:
        named = getattr(args, "config", None) or os.environ.get(config_mod.CONFIG_ENV)
        self.config_path = Path(named) if named else config_mod.DEFAULT_CONFIG_PATH
        self.dir = (Path(args.dir) if getattr(args, "dir", None)
                    else self.config_path.parent).absolute()
        self.tls = self.dir / "tls"
        self.owner: str | None = getattr(args, "owner", DEFAULT_OWNER) or None

    def config(self) -> Config:
        if not self.config_path.exists():
            return config_mod.validate(Config())
        return config_mod.load(self.config_path)

    def set_config(self, values: dict[tuple[str, str], Any]) -> Config:
        """Change keys in the TOML file; refused (file untouched) if the result is invalid."""
        import tomllib

        for (table, key), value in values.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as e:  # argv from a terminal in another code
                    raise ProvisionError(
                        f"{table}.{key}: {value.encode('utf-8', 'replace')!r} is not "
                        "UTF-8 text: type it again in a UTF-8 terminal") from e
        try:
            old = (self.config_path.read_text(encoding="utf-8")
                   if self.config_path.exists() else "")
            new = set_keys(old, values)
            config = config_mod.from_mapping(tomllib.loads(new))
        except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError, not a table
            raise ProvisionError(f"{self.config_path}: not valid TOML: {e}") from e
        if new != old:
            self.config_path.parent.mkdir(parents=True, exist_ok=True)
            if old:  # mode, owner and group kept (root:appliance 0640 when installed)
                pki.atomic_write(self.config_path, new.encode("utf-8"),
                                 self.config_path.stat().st_mode & 0o777)
            else:
                pki.atomic_write(self.config_path, new.encode("utf-8"), 0o640,
                                 group=self.owner)
        return config

    # --- the report --------------------------------------------------------------

    @property
    def report_path(self) -> Path:
        return self.dir / REPORT_NAME

    def recorded(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(self, check: Check) -> None:
        data = self.recorded()
        data[check.name] = {**asdict(check), "at": time.time()}
        self.dir.mkdir(parents=True, exist_ok=True)
        pki.atomic_write(self.report_path, json.dumps(data, ensure_ascii=False, indent=2)
                         .encode("utf-8"), 0o644)


StepFn = Callable[[argparse.Namespace, Context], Check]


def _run(name: str, fn: StepFn, args: argparse.Namespace, next_on_fail: str) -> int:
    """Run one step, record and print its verdict; 1 when it failed."""
    ctx = Context(args)
    refused = False
    try:
        check = fn(args, ctx)
    except (ProvisionError, ConfigError) as e:
        check = Check(name, Verdict.FAIL, str(e), next_on_fail)
        refused = True
    # A refusal changed nothing: what an earlier run of the step installed still holds,
    # so its verdict stays in the report (red team 14: a mistyped --remove id turned
    # the central key's line to "fail" until the next good run).
    earlier = ctx.recorded().get(name, {}).get("verdict")
    if not (refused and earlier in (Verdict.OK.value, Verdict.WARN.value)):
        ctx.record(check)
    print(render([check], quiet=False).rsplit("\n", 1)[0])
    return exit_code([check])


# --- identity ----------------------------------------------------------------------


def _identity(args: argparse.Namespace, ctx: Context) -> Check:
    agency, device = args.agency.strip(), args.device.strip()
    if not config_mod.AGENCY_CODE_RE.match(agency):
        raise ProvisionError(f"agency code {agency!r} is not a QCVN 102:2016 code like "
                             "000.00.12.H42")
    if not config_mod.DEVICE_ID_RE.match(device):
        raise ProvisionError(f"device id {device!r}: use lower-case letters, digits and '-', "
                             "2-63 characters (e.g. kiosk-01)")
    values: dict[tuple[str, str], Any] = {("device", "agency_code"): agency,
                                          ("device", "id"): device}
    if args.name:
        values[("device", "agency_name")] = args.name
    ctx.set_config(values)
    pending = pki.linked(ctx.tls, pki.PENDING)
    if pending is not None and (pending / pki.CSR_NAME).exists() and not pki.csr_names(
            (pending / pki.CSR_NAME).read_bytes(), device, agency):
        _write_csr(ctx, pending, ctx.config())  # not sent yet, presumably: follow
        return Check("identity", Verdict.WARN,
                     f"device {device} of {agency}; the waiting CSR was rewritten for it",
                     f"send the new {ctx.tls / pki.CSR_NAME} to the CA (not the old one)")
    current = pki.linked(ctx.tls, pki.CURRENT)
    if current is not None and (current / pki.CERT_NAME).exists():
        cert = pki.load_pem_certificates(current / pki.CERT_NAME, "certificate")[0]
        cn = cert.subject.rfc4514_string()
        if f"CN={device}" not in cn.split(","):
            return Check("identity", Verdict.WARN,
                         f"device {device} of {agency}, but the installed certificate is "
                         f"{cn}", "`appliance provision renew`, then install the new "
                                  "certificate")
    return Check("identity", Verdict.OK, f"device {device} of agency {agency} "
                                         f"(in {ctx.config_path})")


# --- key and renewal ---------------------------------------------------------------


def _write_csr(ctx: Context, generation: Path, config: Config) -> Path:
    """The generation's CSR, kept while it names the configured identity (ECDSA
    signatures differ each time, and a CSR already sent to the CA must stay valid)."""
    d = config.device
    path = generation / pki.CSR_NAME
    csr = path.read_bytes() if path.exists() else b""
    if not csr or not pki.csr_names(csr, d.id, d.agency_code):
        csr = pki.make_csr(pki.load_key(generation), d.id, d.agency_code)
        pki.atomic_write(path, csr)
    shared = ctx.tls / pki.CSR_NAME
    if not shared.exists() or shared.read_bytes() != csr:
        pki.atomic_write(shared, csr)
    return shared


def _new_key(ctx: Context, config: Config) -> Path:
    ctx.tls.mkdir(parents=True, exist_ok=True, mode=0o750)
    if ctx.owner:
        pki.give_group(ctx.tls, ctx.owner)  # the services read tls/current/…
    generation = pki.new_generation(ctx.tls, ctx.owner)
    pki.generate_key(generation, ctx.owner)
    _write_csr(ctx, generation, config)
    pki.point(ctx.tls, pki.PENDING, generation)
    return generation


def _key(args: argparse.Namespace, ctx: Context) -> Check:
    config = ctx.config()
    pending = pki.linked(ctx.tls, pki.PENDING)
    current = pki.linked(ctx.tls, pki.CURRENT)
    if args.rotate or (pending is None and current is None):
        generation = _new_key(ctx, config)
        what = "new P-256 key made on this device"
    else:
        generation = pending or current
        assert generation is not None
        _write_csr(ctx, generation, config)  # the same key; the CSR follows the identity
        what = "key kept (`--rotate` makes a new one)"
    mode = (generation / pki.KEY_NAME).stat().st_mode & 0o777
    if mode != 0o600:
        return Check("key", Verdict.FAIL, f"{generation / pki.KEY_NAME} has mode {mode:o}",
                     f"chmod 600 {generation / pki.KEY_NAME}")
    if generation == current:
        return Check("key", Verdict.OK, f"{what}; its certificate is installed")
    return Check("key", Verdict.OK,
                 f"{what}; CSR for CN={config.device.id}, O={config.device.agency_code} "
                 f"at {ctx.tls / pki.CSR_NAME}",
                 "carry the CSR (never the key) to the CA, then "
                 "`appliance provision install-cert CERT --ca CA`")


def _renew(args: argparse.Namespace, ctx: Context) -> Check:
    config = ctx.config()
    current = pki.linked(ctx.tls, pki.CURRENT)
    if current is None:
        raise ProvisionError("no certificate installed yet: nothing to renew")
    expires = pki.certificate_expiry(current)
    left = f"the current certificate stays in use until {expires:%Y-%m-%d}" if expires else ""
    pending = pki.linked(ctx.tls, pki.PENDING)
    if pending is not None and not args.rotate:
        _write_csr(ctx, pending, config)
        return Check("renewal", Verdict.WARN,
                     f"renewal key waiting for its certificate (CSR at "
                     f"{ctx.tls / pki.CSR_NAME}); {left}",
                     "get the CSR signed, then `appliance provision install-cert CERT --ca CA`")
    _new_key(ctx, config)
    return Check("renewal", Verdict.WARN,
                 f"new key and CSR at {ctx.tls / pki.CSR_NAME}; {left}",
                 "get the CSR signed, then `appliance provision install-cert CERT --ca CA`")


# --- the certificate ---------------------------------------------------------------


def _install_cert(args: argparse.Namespace, ctx: Context) -> Check:
    config = ctx.config()
    pending = pki.linked(ctx.tls, pki.PENDING)
    current = pki.linked(ctx.tls, pki.CURRENT)
    candidates = [g for g in (pending, current) if g is not None]
    if not candidates:
        raise ProvisionError("this device has no key yet: run `appliance provision key` first")
    cert_path, ca_path = Path(args.cert), Path(args.ca)
    leaf = pki.load_pem_certificates(cert_path, "certificate")[0]
    generation = next((g for g in candidates if pki.key_matches(leaf, pki.load_key(g))),
                      candidates[0])
    checked = pki.check_certificate(cert_path, ca_path, pki.load_key(generation),
                                    config.device.id)
    pki.atomic_write(generation / pki.CERT_NAME, checked.cert_pem)
    pki.atomic_write(generation / pki.CA_NAME, checked.ca_pem)
    renewed = current is not None and generation != current
    pki.point(ctx.tls, pki.CURRENT, generation)  # the swap: one rename
    if generation == pending:
        (ctx.tls / pki.PENDING).unlink()
    for old in ctx.tls.glob("gen-*"):
        # Keys that can no longer be used are not kept (only the one in use and a
        # renewal still waiting for its certificate).
        if old not in (generation, pki.linked(ctx.tls, pki.PENDING)):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    link = ctx.tls / pki.CURRENT
    ctx.set_config({("mqtt", "tls"): True,
                    ("mqtt", "cert_file"): str(link / pki.CERT_NAME),
                    ("mqtt", "key_file"): str(link / pki.KEY_NAME),
                    ("mqtt", "ca_file"): str(link / pki.CA_NAME)})
    days = (checked.not_after - dt.datetime.now(dt.UTC)).days
    what = "renewed certificate installed" if renewed else "certificate installed"
    if renewed:
        ctx.record(Check("renewal", Verdict.OK, f"renewed: serial {checked.serial:x} in use"))
    return Check("certificate", Verdict.OK,
                 f"{what}: {checked.subject}, valid {days} more day(s); sync uses it from "
                 "its next connection", "`appliance provision broker`")


# --- scanner, models, broker -------------------------------------------------------


def _scanner(args: argparse.Namespace, ctx: Context) -> Check:
    """`appliance scanner test` in a child process (SANE reads its folder once per process)."""
    config = ctx.config()
    argv = [sys.executable, "-m", "appliance", "scanner", "test", "--json"]
    if args.device:
        argv += ["--device", args.device]
    env = dict(os.environ)
    if ctx.config_path.exists():
        env[config_mod.CONFIG_ENV] = str(ctx.config_path)
    timeout = config.health.scanner_timeout_seconds + args.timeout
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise ProvisionError(f"the scanner test did not finish in {timeout:.0f} s") from e
    try:
        result = json.loads(out.stdout[out.stdout.index("{"):])
    except ValueError:
        result = {}
    if out.returncode != 0 or not result.get("ok"):
        detail = (f"{result['message']} ({result.get('error', 'scanner.error')})"
                  if result.get("message") else
                  (out.stderr.strip().splitlines() or ["no output"])[-1])
        raise ProvisionError(f"scanner test failed: {detail}")
    if args.device:
        ctx.set_config({("scanner", "device"): args.device})
    identity = str(result.get("identity", args.device or "scanner"))
    name = next((part.split("=", 1)[1] for part in identity.split("&")
                 if part.split("=", 1)[0].endswith("model")), identity)
    from urllib.parse import unquote

    return Check("scanner", Verdict.OK,
                 f"{unquote(name)}: {result.get('pages', 0)} page(s) scanned in the test")


def _models(args: argparse.Namespace, ctx: Context) -> Check:
    from appliance.ocr.errors import OcrError
    from appliance.ocr.manifest import Manifest, default_models_dir

    folder = Path(args.models_dir) if args.models_dir else default_models_dir()
    try:
        manifest = Manifest.load(folder)
        for entry in manifest.entries:
            entry.verified_path(manifest.models_dir)
    except OcrError as e:
        raise ProvisionError(str(e)) from e
    if not manifest.entries:
        raise ProvisionError(f"{folder}: the manifest lists no model")
    return Check("models", Verdict.OK, f"{len(manifest.entries)} model file(s) in {folder} "
                                       "match their sha256")


# What a technician does next for each way the broker test can fail (sync/probe.py
# names them; the technician panel shows the same in Vietnamese).
PROBE_NEXT = {
    "sync.probe.no_broker": "give --host HOST --port PORT",
    "sync.probe.dns": "check the broker's name (--host) and the office's DNS",
    "sync.probe.refused": "check --port and ask the central office whether its broker runs",
    "sync.probe.timeout": "check the Internet link, the firewall and --host",
    "sync.probe.tls_files": "reinstall the certificate (`appliance provision install-cert`)",
    "sync.probe.tls": "the broker refused this device's certificate, or its CA does not "
                      "match: check the CA, the certificate and the clock (`date -u`)",
    "sync.probe.not_authorised": "ask the central office to allow this device (its CN)",
    "sync.probe.broker_refused": "ask the central office to check its broker",
    "sync.probe.network": "check the network cable or Wi-Fi and try again",
}


def _broker(args: argparse.Namespace, ctx: Context) -> Check:
    values: dict[tuple[str, str], Any] = {}
    if args.host:
        values[("mqtt", "host")] = args.host
    if args.port:
        values[("mqtt", "port")] = args.port
    config = ctx.set_config(values) if values else ctx.config()
    from appliance.sync.probe import probe

    m = config.mqtt
    found = probe(m, f"{config.device.id}-provision", config.health.broker_timeout_seconds)
    if not found.ok:
        what = found.key.rsplit(".", 1)[-1].replace("_", " ")
        return Check("broker", Verdict.FAIL,
                     f"{m.host or '(no host)'}:{m.port}: {what}: {found.detail}",
                     PROBE_NEXT.get(found.key, "run `appliance doctor`"))
    if not (m.tls and m.cert_file):
        return Check("broker", Verdict.WARN, f"{m.host}:{m.port} accepted a connection "
                                             "without a client certificate",
                     "install the certificate (`appliance provision install-cert`)")
    return Check("broker", Verdict.OK,
                 f"{m.host}:{m.port} accepted this device's certificate (mutual TLS) in "
                 f"{found.seconds * 1000:.0f} ms")


# --- the central office's ack key --------------------------------------------------

CENTRAL_KEY_NAME = "central-acks.pem"


def _central_key(args: argparse.Namespace, ctx: Context) -> Check:
    """Install the central office's public key(s) that acks must be signed by: FILE
    replaces them, `--add FILE` adds beside them (the first step of a key change),
    `--remove KEY_ID` takes a retired one off (the last step). Every block is checked
    before anything is written, so a bad file never stops sync; sync reads the file
    again at the first ack it cannot verify, with no restart."""
    from appliance.system import central_key

    config = ctx.config()
    current = Path(config.mqtt.central_public_key) if config.mqtt.central_public_key else None
    try:
        # Read only when kept: a file sync refuses must be replaceable by a good one.
        held = (central_key.read(current) if (args.add or args.remove) and current
                is not None and current.exists() else [])
        if args.remove:
            if args.file:
                raise ProvisionError("give FILE or --remove KEY_ID, not both")
            blocks = [b for b in held if b.key_id != args.remove]
            if len(blocks) == len(held):
                raise ProvisionError(f"{args.remove} is not a key this device believes "
                                     f"({', '.join(b.key_id for b in held) or 'none'})")
            if not blocks:
                raise ProvisionError(f"{args.remove} is the only key this device believes: "
                                     "install the office's new key first")
        else:
            if not args.file:
                raise ProvisionError("give the central office's public key FILE")
            given = central_key.read(Path(args.file))
            known = {b.key_id for b in held}
            blocks = ([*held, *(b for b in given if b.key_id not in known)] if args.add
                      else given)
            if len(blocks) > central_key.MAX_KEYS:
                raise ProvisionError(f"{len(blocks)} keys: a device believes at most "
                                     f"{central_key.MAX_KEYS}; remove a retired one first")
        data = central_key.render(blocks)
        # Read back what is about to be written: the device must believe exactly the
        # keys this step announces (red team 10: a file that read as fewer keys than
        # announced made acks of the key still in use count as forged).
        written = [b.key_id for b in central_key.parse(data, CENTRAL_KEY_NAME)]
    except central_key.CentralKeyError as e:
        raise ProvisionError(str(e)) from e
    ids = [b.key_id for b in blocks]
    if written != ids:
        raise ProvisionError(f"the file would be read as key(s) {', '.join(written)}, not "
                             f"{', '.join(ids)}")
    # The file sync watches: the configured one when there is one (a running sync
    # reads only that path; writing elsewhere left a removed key believed there until
    # sync restarted: red team 13), else the provisioning folder's.
    target = current if current is not None else ctx.dir / CENTRAL_KEY_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        pki.atomic_write(target, data, 0o644)
    except OSError as e:
        raise ProvisionError(f"cannot write {target}: {e}") from e
    ctx.set_config({("mqtt", "central_public_key"): str(target)})
    said = f"{target}: acks believed from {len(ids)} central key(s): {', '.join(ids)}"
    cas = [b.key_id for b in blocks if b.ca]
    if cas:
        return Check("central_key", Verdict.WARN,
                     f"{said}; {', '.join(cas)} came as a CA's certificate, whose key is "
                     "then believed for acks too",
                     "install the central's own certificate or public key alone (with "
                     "--remove for the CA's), unless that CA's key is meant to sign acks")
    return Check("central_key", Verdict.OK, said)


# --- officers ----------------------------------------------------------------------


def _read_pin(args: argparse.Namespace) -> str:
    if args.pin_stdin:
        return sys.stdin.readline().strip()
    first = getpass.getpass("PIN (4-12 digits): ")
    if getpass.getpass("PIN again: ") != first:
        raise ProvisionError("the two PINs differ")
    return first


def _officer(args: argparse.Namespace, ctx: Context) -> Check:
    from appliance.store import officers
    from appliance.store.db import connect

    config = ctx.config()
    existed = config.paths.database.exists()
    conn = connect(config.paths.database, migrate=True, key_file=config.paths.key_file)
    try:
        if args.action == "add":
            if not args.name:
                raise ProvisionError("officer add needs the officer's NAME")
            try:
                changed = officers.enrol(conn, args.name, _read_pin(args),
                                         reserved=(config.web.officer_pin,
                                                   config.web.technician_pin))
            except officers.OfficerError as e:
                raise ProvisionError(str(e)) from e
            done = "enrolled" if changed else "already enrolled with that PIN"
        elif args.action == "remove":
            if not args.name:
                raise ProvisionError("officer remove needs the officer's NAME")
            done = "disabled" if officers.disable(conn, args.name) else "was not active"
        else:
            done = "listed"
        active = [o.name for o in officers.listing(conn) if not o.disabled]
    finally:
        conn.close()
    if not existed and os.geteuid() == 0 and ctx.owner:
        _give_database(config, ctx.owner)
    who = f"{args.name}: {done}; " if args.name else ""
    if not active:
        return Check("officers", Verdict.WARN, who + "no officer enrolled",
                     "`appliance provision officer add NAME` for each officer")
    return Check("officers", Verdict.OK, who + f"{len(active)} officer(s) enrolled: "
                                         + ", ".join(active))


def _give_database(config: Config, owner: str) -> None:
    """A database this root process created must belong to the service user."""
    import pwd

    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        return
    for path in config.paths.database.parent.glob(config.paths.database.name + "*"):
        os.chown(path, entry.pw_uid, entry.pw_gid)


# --- the report --------------------------------------------------------------------


def certificate_check(ctx: Context, config: Config) -> Check | None:
    """The installed certificate's days left, looked at now (it ages between visits)."""
    current = pki.linked(ctx.tls, pki.CURRENT)
    expires = pki.certificate_expiry(current) if current else None
    if expires is None:
        return None
    days = (expires - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    if days < 0:
        return Check("certificate", Verdict.FAIL, f"expired on {expires:%Y-%m-%d}",
                     "`appliance provision renew`, get the CSR signed, install it")
    if days < config.health.cert_warn_days:
        return Check("certificate", Verdict.WARN, f"expires in {days:.0f} day(s)",
                     "`appliance provision renew` now: the current one stays in use until "
                     "the new one is installed")
    return None


def collect(ctx: Context) -> list[Check]:
    recorded = ctx.recorded()
    checks = []
    for name, command, required in STEPS:
        found = recorded.get(name)
        if found is None:
            if name == "renewal":
                continue
            checks.append(Check(name, Verdict.FAIL if required else Verdict.WARN,
                                "not done yet", f"`appliance provision {command}`"))
            continue
        checks.append(Check(name, Verdict(found["verdict"]), found["summary"],
                            found.get("next_step", "")))
    try:
        live = certificate_check(ctx, ctx.config())
    except ConfigError:
        live = None
    if live is not None:
        checks = [live if c.name == "certificate" else c for c in checks]
    return checks


def cmd_report(args: argparse.Namespace) -> int:
    ctx = Context(args)
    checks = collect(ctx)
    if args.json:
        print(json.dumps({"ok": exit_code(checks) == 0, "report": str(ctx.report_path),
                          "checks": [asdict(c) for c in checks]}, ensure_ascii=False,
                         indent=2))
    else:
        print(render(checks))
    return exit_code(checks)


# --- argument parsing and entry points (registered lazily in cli.py) ----------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="provisioning folder holding tls/ and the report "
                                      "(default: the configuration file's folder)")
    parser.add_argument("--owner", default=DEFAULT_OWNER,
                        help="service user that must own the private key and database "
                             f"(default: {DEFAULT_OWNER})")


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--agency", required=True, help="QCVN 102:2016 code, 000.00.12.H42")
    parser.add_argument("--device", required=True, help="device id, e.g. kiosk-01")
    parser.add_argument("--name", help="the office's name (device.agency_name)")


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--rotate", action="store_true",
                        help="make a new key even if one exists")


def add_install_cert_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("cert", help="the signed certificate (PEM) the CA returned")
    parser.add_argument("--ca", required=True, help="the CA certificate(s) (PEM)")


def add_scanner_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--device", help="SANE device to choose (else scanner.device, "
                                         "else the first listed)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds allowed for the test scan")


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--models-dir", help="models folder (default: the installed one)")


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--host", help="broker host (sets mqtt.host)")
    parser.add_argument("--port", type=int, help="broker port (sets mqtt.port)")


def add_central_key_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("file", nargs="?",
                        help="the central office's public key(s) or certificate(s) (PEM)")
    parser.add_argument("--add", action="store_true",
                        help="keep the keys installed and add FILE's beside them")
    parser.add_argument("--remove", metavar="KEY_ID",
                        help="take a retired key off (its id as `appliance doctor` shows)")


def add_officer_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("action", choices=("add", "remove", "list"))
    parser.add_argument("name", nargs="?", help="the officer's name as signed on records")
    parser.add_argument("--pin-stdin", action="store_true",
                        help="read the PIN from one line of stdin (scripts)")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--json", action="store_true")


def cmd_identity(args: argparse.Namespace) -> int:
    return _run("identity", _identity, args, "give a valid --agency and --device")


def cmd_key(args: argparse.Namespace) -> int:
    return _run("key", _key, args, "run as root after `provisioning/install.sh install`")


def cmd_renew(args: argparse.Namespace) -> int:
    return _run("renewal", _renew, args, "`appliance provision key` and install a certificate")


def cmd_install_cert(args: argparse.Namespace) -> int:
    return _run("certificate", _install_cert, args,
                "nothing was changed; fix what the line says and run install-cert again")


def cmd_scanner(args: argparse.Namespace) -> int:
    return _run("scanner", _scanner, args, "check power and cable, then `appliance scanner "
                                           "list`; stop the worker while testing")


def cmd_models(args: argparse.Namespace) -> int:
    return _run("models", _models, args, "reinstall the models (copy models/ from the "
                                         "installation medium)")


def cmd_broker(args: argparse.Namespace) -> int:
    return _run("broker", _broker, args, "check --host/--port, the office's link, and that "
                                         "the broker trusts this device's CA")


def cmd_central_key(args: argparse.Namespace) -> int:
    return _run("central_key", _central_key, args,
                "nothing was changed; check KEY_ID against the ids `appliance doctor` "
                "lists (central_key)" if args.remove else
                "nothing was changed; get the key file from the central office again")


def cmd_officer(args: argparse.Namespace) -> int:
    return _run("officers", _officer, args, "fix the name or PIN and run it again")
