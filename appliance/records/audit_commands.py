"""`appliance audit verify` and `appliance purge`: the audit chain and the retention run.

Kept apart from the use cases so the CLI imports them only when chosen. Both open the
store the way the services do (paths.key_file), so a missing or wrong key ends them
with exit code 2 like any configuration error.
"""

from __future__ import annotations

import argparse
import json

from appliance.records import audit, erasure
from appliance.store.db import connect, sealer_of
from appliance.store.files import FileStore
from appliance.system.service import load_config

EXIT_TAMPERED = 1


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser("verify", help="check the hash chain: exit 1 if anything was "
                                           "edited, deleted or reordered")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_audit(args: argparse.Namespace) -> int:
    """Verify the chain; 0 intact, 1 tampered (each problem printed), 2 bad config/key."""
    config = load_config(getattr(args, "config", None))
    conn = connect(config.paths.database, key_file=config.paths.key_file)
    try:
        result = audit.verify(conn)
    finally:
        conn.close()
    if getattr(args, "json", False):
        print(json.dumps({"ok": result.ok, "entries": result.entries,
                          "problems": result.problems}, ensure_ascii=False))
    else:
        for problem in result.problems:
            print(f"audit: {problem}")
        print(f"audit log: {result.entries} entries, "
              f"{'intact' if result.ok else f'{len(result.problems)} problem(s)'}")
    return 0 if result.ok else EXIT_TAMPERED


def add_purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print what was purged as JSON")


def cmd_purge(args: argparse.Namespace) -> int:
    """One retention run (a systemd timer's job): purge dossiers delivered long enough."""
    config = load_config(getattr(args, "config", None))
    conn = connect(config.paths.database, key_file=config.paths.key_file)
    try:
        done = erasure.purge_due(conn, FileStore(config.paths.files, sealer=sealer_of(conn)),
                                 config)
    finally:
        conn.close()
    if getattr(args, "json", False):
        print(json.dumps([{"dossier_id": r.dossier_id, "pages": r.pages,
                           "files_removed": r.files_removed} for r in done]))
    else:
        print(f"purged {len(done)} dossier(s) delivered more than "
              f"{config.retention.delivered_days} day(s) ago")
    return 0
