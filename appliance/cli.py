"""`appliance …`: one entry point, one subcommand per process or tool.

The argument tree is built from names and help strings only: a subcommand's module is
imported when that subcommand is chosen (to add its options, then to run it), never
before. So `appliance sync` holds the outbox loop, paho and sqlite3 in memory and not
Flask, numpy or onnxruntime, and `appliance web` never imports the scanner.
Every long-running subcommand starts through ``appliance.system.service``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.system import config as config_mod
from appliance.system.errors import ConfigError
from appliance.system.service import report_config_error, run_service

CONFIG_HELP = (f"TOML file (default: ${config_mod.CONFIG_ENV}, then "
               f"{config_mod.DEFAULT_CONFIG_PATH}, then built-in defaults)")


@dataclass(frozen=True)
class Command:
    """A subcommand by name: ``module:function`` to run and, optionally, to add options.

    Strings, not functions, so that listing the commands imports none of them.
    """

    name: str
    help: str
    run: str
    arguments: str | None = None


def _resolve(target: str) -> Callable[..., Any]:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


class LazyParser(argparse.ArgumentParser):
    """A parser whose options are added by its command's module on first real use.

    argparse parses a chosen subcommand by calling that subparser's
    ``parse_known_args``, and prints help through ``format_help``; both load the
    options first, so only the chosen subcommand's module is ever imported.
    """

    def __init__(self, *args: Any, command: Command | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._command = command
        self._loaded = command is None or command.arguments is None

    def _load(self) -> None:
        if self._loaded or self._command is None or self._command.arguments is None:
            return
        self._loaded = True
        _resolve(self._command.arguments)(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load()
        return super().format_help()

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()


COMMANDS: tuple[Command, ...] = (
    Command("web", "serve the kiosk, officer and technician screens (gunicorn)",
            "appliance.web.server:cmd_web", "appliance.web.server:add_web_arguments"),
    Command("worker", "run scan and OCR jobs (the only scanner user)",
            "appliance.cli:cmd_worker"),
    Command("sync", "forward the outbox to the central office over MQTT",
            "appliance.sync.commands:cmd_sync", "appliance.sync.commands:add_sync_arguments"),
    Command("central", "reference receiver for the central office",
            "appliance.central.commands:cmd_central",
            "appliance.central.commands:add_central_arguments"),
    Command("ocr", "read images and print their text",
            "appliance.ocr.commands:cmd_ocr", "appliance.ocr.commands:add_ocr_arguments"),
    Command("extract", "OCR a paper's page images and print its fields",
            "appliance.extraction.commands:cmd_extract",
            "appliance.extraction.commands:add_extract_arguments"),
    Command("demo-scanner", "an eSCL (AirScan) scanner emulator on loopback",
            "appliance.demo.commands:cmd_demo_scanner",
            "appliance.demo.commands:add_demo_scanner_arguments"),
    Command("status", "queue, delivery, scanner and model state",
            "appliance.cli:cmd_status", "appliance.cli:add_status_arguments"),
    Command("run", "start web, worker, sync and a demo scanner together",
            "appliance.demo.supervisor:run_demo", "appliance.demo.supervisor:add_run_arguments"),
    Command("check-config", "validate the configuration and print it "
                            "(alias of `config check` + `config show`)",
            "appliance.cli:cmd_check_config"),
    Command("config", "check a configuration file, show it, or print the key reference",
            "appliance.system.config_reference:cmd_config",
            "appliance.system.config_reference:add_config_arguments"),
    Command("doctor", "check the device for a technician: ok/warn/fail and the next step",
            "appliance.cli:cmd_doctor", "appliance.cli:add_doctor_arguments"),
    Command("wait-web", "wait until the kiosk page is served (the web unit's readiness)",
            "appliance.system.readiness:cmd_wait_web",
            "appliance.system.readiness:add_wait_web_arguments"),
    Command("purge", "one retention run: purge dossiers delivered long enough ago",
            "appliance.records.audit_commands:cmd_purge",
            "appliance.records.audit_commands:add_purge_arguments"),
    Command("record", "export one dossier's signed PDFs, their metadata and the record",
            "appliance.records.export:cmd", "appliance.records.export:add_arguments"),
    Command("audit", "verify the hash-chained audit log",
            "appliance.records.audit_commands:cmd_audit",
            "appliance.records.audit_commands:add_audit_arguments"),
    Command("keys", "create the encryption key file (provisioning)",
            "appliance.system.crypto:cmd_keys", "appliance.system.crypto:add_keys_arguments"),
)

BENCH_COMMANDS: tuple[Command, ...] = (
    Command("ocr", "int8 vs fp32 vs tesseract on generated pages",
            "appliance.bench.ocr:cmd_bench", "appliance.bench.ocr:add_bench_arguments"),
    Command("outbox", "outbox end-to-end vs raw paho publishing on one broker",
            "appliance.cli:cmd_bench_outbox", "appliance.cli:add_bench_outbox_arguments"),
    Command("fleet", "many devices draining at once into receivers sharing a subscription",
            "appliance.bench.fleet:cmd_bench_fleet",
            "appliance.bench.fleet:add_bench_fleet_arguments"),
    Command("memory", "steady-state RSS/PSS of web, worker and sync with a scan in flight",
            "appliance.bench.memory:cmd_bench_memory",
            "appliance.bench.memory:add_bench_memory_arguments"),
    Command("web", "p50/p95/p99 of the kiosk pages and status endpoints, with and "
                   "without OCR running",
            "appliance.bench.web:cmd_bench_web", "appliance.bench.web:add_bench_web_arguments"),
    Command("scan", "scanning overhead per page vs plain scanimage on the same device",
            "appliance.bench.scan:cmd_bench_scan",
            "appliance.bench.scan:add_bench_scan_arguments"),
)

_P = "appliance.provision.commands"
PROVISION_COMMANDS: tuple[Command, ...] = (
    Command("identity", "set the agency code and device id (validated)",
            f"{_P}:cmd_identity", f"{_P}:add_identity_arguments"),
    Command("key", "make the device key (0600, never leaves it) and the CSR for the CA",
            f"{_P}:cmd_key", f"{_P}:add_key_arguments"),
    Command("install-cert", "check and install the signed certificate and the CA",
            f"{_P}:cmd_install_cert", f"{_P}:add_install_cert_arguments"),
    Command("scanner", "choose and test the scanner (one scan)",
            f"{_P}:cmd_scanner", f"{_P}:add_scanner_arguments"),
    Command("models", "verify the OCR models against their checksums",
            f"{_P}:cmd_models", f"{_P}:add_models_arguments"),
    Command("broker", "test the mutual-TLS connection to the broker",
            f"{_P}:cmd_broker", f"{_P}:add_broker_arguments"),
    Command("central-key", "install, add or remove the central office's ack key(s)",
            f"{_P}:cmd_central_key", f"{_P}:add_central_key_arguments"),
    Command("officer", "enrol (add), disable (remove) or list officers and their PINs",
            f"{_P}:cmd_officer", f"{_P}:add_officer_arguments"),
    Command("renew", "a new key and CSR while the current certificate stays in use",
            f"{_P}:cmd_renew", f"{_P}:add_key_arguments"),
    Command("report", "every step's verdict and the next step",
            f"{_P}:cmd_report", f"{_P}:add_report_arguments"),
)

SCANNER_COMMANDS: tuple[Command, ...] = (
    Command("list", "SANE devices found, by which backend, and how long it took",
            "appliance.scanner.commands:cmd_list", "appliance.scanner.commands:add_list_arguments"),
    Command("test", "open the scanner and scan one batch, timing each step",
            "appliance.scanner.commands:cmd_test", "appliance.scanner.commands:add_test_arguments"),
    Command("write-config", "write the appliance's minimal SANE folder",
            "appliance.scanner.commands:cmd_write_config",
            "appliance.scanner.commands:add_write_config_arguments"),
)


def cmd_worker(args: argparse.Namespace) -> int:
    from appliance.worker import run_worker

    return run_service("worker", args.config, run_worker)


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.status import collect

    status = collect(config_mod.load(args.config))
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
    else:
        for key, value in status.items():
            print(f"{key}: {value}")
    return 0


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--quiet", action="store_true",
                        help="print warnings and failures only (the hourly timer)")
    parser.add_argument("--skip", action="append", default=[], metavar="CHECK",
                        help="leave a check out (e.g. scanner while a scan runs); repeatable")


def _check_models(config: config_mod.Config) -> Any:
    """Every model file against its sha256 in the manifest (the OCR refuses it otherwise)."""
    from appliance.ocr.errors import OcrError
    from appliance.ocr.manifest import Manifest, default_models_dir
    from appliance.system.doctor import Check, Verdict, msg

    if not config.ocr.enabled:
        return Check("models", Verdict.SKIP, "OCR disabled (ocr.enabled = false)",
                     summary_msg=msg("tech.doctor.summary.models.disabled"))
    try:
        manifest = Manifest.load(default_models_dir())
        for entry in manifest.entries:
            entry.verified_path(manifest.models_dir)
    except OcrError as e:
        return Check("models", Verdict.FAIL, str(e),
                     "reinstall the models: `.venv/bin/python models/install_models.py` "
                     "(offline: copy models/ from the installation medium)",
                     summary_msg=msg("tech.doctor.summary.models.problem", error=str(e)),
                     next_msg=msg("tech.doctor.next.models.reinstall"))
    return Check("models", Verdict.OK, f"{len(manifest.entries)} model file(s) match "
                                       "their sha256",
                 summary_msg=msg("tech.doctor.summary.models.match",
                                 count=len(manifest.entries)))


def _check_schema(config: config_mod.Config) -> Any:
    """The database's schema version against this software's migrations (upgrade/rollback)."""
    from appliance.store.migrations import MIGRATIONS
    from appliance.system.doctor import Check, Verdict, msg, open_read_only

    path = config.paths.database
    if not path.exists():
        return Check("schema", Verdict.SKIP, "no database yet",
                     summary_msg=msg("tech.doctor.summary.no_database"))
    conn = open_read_only(path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    if version > len(MIGRATIONS):
        return Check("schema", Verdict.FAIL,
                     f"database schema {version} is newer than this software "
                     f"({len(MIGRATIONS)}): a rollback is refused",
                     "reinstall the newer release; the database was not touched",
                     summary_msg=msg("tech.doctor.summary.schema.newer", version=version,
                                     current=len(MIGRATIONS)),
                     next_msg=msg("tech.doctor.next.schema.newer"))
    if version < len(MIGRATIONS):
        return Check("schema", Verdict.WARN, f"schema {version}, this software "
                                             f"{len(MIGRATIONS)}",
                     "migrated forward at the next start: `systemctl restart "
                     "appliance.target`",
                     summary_msg=msg("tech.doctor.summary.schema.older", version=version,
                                     current=len(MIGRATIONS)),
                     next_msg=msg("tech.doctor.next.schema.older"))
    return Check("schema", Verdict.OK, f"schema {version} (current)",
                 summary_msg=msg("tech.doctor.summary.schema.current", version=version))


def _resolve_scanner(wanted: str, listed: Any) -> str | None:
    """The doctor's scanner matching, done as the worker does it (a stable identity
    finds a replugged scanner under its new SANE name)."""
    from appliance.scanner.device import DeviceInfo, resolve_device
    from appliance.scanner.errors import ScannerError
    from appliance.scanner.identity import serial_from_name

    devices = [DeviceInfo(n, v, m, t, serial_from_name(n)) for n, v, m, t in listed]
    try:
        return resolve_device(wanted, devices).name
    except ScannerError:
        return None


def _check_scanner(config: config_mod.Config) -> Any:
    """The scanner the worker opens: the technician's choice, else scanner.device."""
    from appliance.system import doctor

    return doctor.check_scanner(config, resolve=_resolve_scanner)


def cmd_doctor(args: argparse.Namespace) -> int:
    """0 when nothing failed (warnings allowed), 1 when a check failed. The round is
    kept for the technician panel and sync's status heartbeat (doctor.local_checks)."""
    from appliance.system import doctor

    checks = doctor.run_checks(args.config, {"scanner": _check_scanner,
                                             "models": _check_models, "schema": _check_schema},
                               skip=args.skip, save=True)
    text = doctor.to_json(checks) if args.json else doctor.render(checks, quiet=args.quiet)
    if text:
        print(text)
    return doctor.exit_code(checks)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    print(config_mod.dump(config))
    return 0


def add_bench_outbox_arguments(parser: argparse.ArgumentParser) -> None:
    from appliance.bench.outbox import add_bench_sync_arguments

    add_bench_sync_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_bench_outbox(args: argparse.Namespace) -> int:
    """Needs a running broker at --host/--port (tests start their own mosquitto)."""
    from appliance.bench.outbox import cmd_bench_sync

    return cmd_bench_sync(args)


def _add_commands(parent: argparse.ArgumentParser, dest: str,
                  commands: Sequence[Command]) -> argparse._SubParsersAction[Any]:
    sub = parent.add_subparsers(dest=dest, required=True, parser_class=LazyParser)
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, command=command)
        # Also accepted after the subcommand; SUPPRESS keeps an absent one from
        # overwriting the top-level value (the old `--config FILE sync` bug).
        p.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
        p.set_defaults(command=command)
    return sub


def build_parser() -> argparse.ArgumentParser:
    parser = LazyParser(prog="appliance", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = _add_commands(parser, "what", COMMANDS)
    bench = sub.add_parser("bench", help="measurements")
    bench.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    _add_commands(bench, "bench", BENCH_COMMANDS)
    scanner = sub.add_parser("scanner", help="technician checks of the scanner")
    scanner.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    _add_commands(scanner, "scanner", SCANNER_COMMANDS)
    provision = sub.add_parser("provision", help="set up the device offline, step by step "
                                                 "(each re-runnable)")
    provision.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    _add_commands(provision, "provision", PROVISION_COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.config:
        # Children (`appliance run`) and gunicorn workers read the same file.
        os.environ[config_mod.CONFIG_ENV] = args.config
    command: Command = args.command
    try:
        sys.exit(_resolve(command.run)(args))
    except ConfigError as e:
        sys.exit(report_config_error(e))
