"""`appliance central --report` and `--decide`: what the central office's operator
must look at, and the one decision only a person can make.

The receiver logs its counters once a minute, but three things in its database each
need a person, and used to take SQL to see:
- a conflict: two contents under one record id of one device (a squatter, or a
  device restored from an old backup). The genuine one is served, or the id is
  contested and nothing is served for it (every content is kept) until an operator
  chooses one with `--decide`;
- a refused record: it will never be stored as sent;
- a dead letter: a message nobody could read (an attacker, or a device on other
  software).

It also lists the keys that signed acks, with when each was first and last used: while
the office changes keys, the old one is retired from the devices only once no
receiver has used it for a while.

This reads them from the receiver's own database, SQLite or PostgreSQL alike, newest
first, with the counters and the open chunk transfers. Everything in a dead letter
came from whoever could publish (its topic, its first bytes). The text form
therefore escapes what is not printable, so a message cannot write escape sequences
to the operator's terminal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from appliance.central import store as central_store
from appliance.central.db import CentralConnection, open_configured, open_for_reading
from appliance.central.errors import CentralStoreError, DecisionRefused
from appliance.system.config import Config

DEFAULT_LAST = 20
# The first bytes of a dead letter shown: enough to tell JSON from junk.
HEAD_SHOWN = 48


def _when(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def printable(text: str) -> str:
    """`text` with every character that is not printable written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _signing_keys(conn: CentralConnection) -> list[dict[str, Any]]:
    """The ack signing keys noted; none in a database of a receiver from before they
    were noted (read as it is: the report never migrates)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='signing_keys'"
        if conn.engine == "sqlite" else
        "SELECT to_regclass('signing_keys') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return []
    return [{"key_id": k.key_id, "first_at": _when(k.first_at), "last_at": _when(k.last_at),
             "public_key": k.public_key} for k in central_store.signing_keys(conn)]


def build(conn: CentralConnection, last: int = DEFAULT_LAST) -> dict[str, Any]:
    """The report as plain data (what `--json` prints)."""
    conflicts = [dict(r) for r in conn.execute(
        "SELECT device_id, record_id, state, opened_at, updated_at FROM conflicts "
        "WHERE state <> 'resolved' ORDER BY updated_at DESC LIMIT ?", (last,))]
    by_state = {r["state"]: int(r["n"]) for r in conn.execute(
        "SELECT state, COUNT(*) AS n FROM conflicts GROUP BY state")}
    rejections = [dict(r) for r in conn.execute(
        "SELECT device_id, record_id, sha256, reason, at FROM rejections "
        "ORDER BY id DESC LIMIT ?", (last,))]
    letters = []
    for r in conn.execute("SELECT id, topic, device_id, reason, size, head, at "
                          "FROM dead_letters ORDER BY id DESC LIMIT ?", (last,)):
        head = bytes(r["head"])[:HEAD_SHOWN]
        letters.append({"id": int(r["id"]), "at": _when(r["at"]), "topic": r["topic"],
                        "device_id": r["device_id"], "size": int(r["size"]),
                        "reason": r["reason"],
                        "head": head.decode("utf-8", "backslashreplace")})
    for row in conflicts:
        row["opened_at"], row["updated_at"] = _when(row["opened_at"]), _when(row["updated_at"])
        # What the operator chooses between (--decide DEVICE RECORD_ID SHA256).
        row["contents"] = [
            {"sha256": c["sha256"], "status": c["status"], "claimed": bool(c["claimed"]),
             "dossier_code": c["dossier_code"], "received_at": _when(c["received_at"]),
             "copies": int(c["copies"])}
            for c in conn.execute(
                "SELECT sha256, status, claimed, dossier_code, received_at, copies FROM "
                "records WHERE device_id=? AND record_id=? ORDER BY received_at",
                (row["device_id"], row["record_id"]))]
    for row in rejections:
        row["at"] = _when(row["at"])
    return {
        "engine": conn.engine,
        "counters": dict(sorted(central_store.counters(conn).items())),
        "chunks": central_store.chunk_state(conn),
        "conflicts": {"open": by_state.get("open", 0),
                      "contested": by_state.get("contested", 0),
                      "resolved": by_state.get("resolved", 0), "latest": conflicts},
        "rejections": rejections,
        "dead_letters": letters,
        "signing_keys": _signing_keys(conn),
    }


def render(report: dict[str, Any]) -> str:
    """The report for a terminal, one line per item, attacker's text escaped."""
    lines = [f"central database ({report['engine']})"]
    if report.get("unlocked"):
        lines.append("read as a file, without locks (this user may not make its -shm): "
                     "a receiver that starts meanwhile can make these figures wrong")
    lines.append("counters:")
    lines += [f"  {name}: {value}" for name, value in report["counters"].items()]
    chunks = report["chunks"]
    lines.append(f"open chunk transfers: {chunks['transfers']} holding {chunks['bytes']} "
                 f"bytes; files sent whole waiting for their record: "
                 f"{chunks['pending_files']}")
    conflicts = report["conflicts"]
    lines.append(f"conflicts: {conflicts['open']} open, {conflicts['contested']} contested "
                 f"(nothing served for these ids until an operator runs --decide), "
                 f"{conflicts['resolved']} resolved")
    for c in conflicts["latest"]:
        lines.append(f"  {c['updated_at']} {c['state']} {printable(c['device_id'])} "
                     f"{printable(c['record_id'])}")
        lines += [f"    {k['sha256']} {k['status']}{' claimed' if k['claimed'] else ''}, "
                  f"dossier {printable(k['dossier_code'])}, first {k['received_at']}, "
                  f"{k['copies']} cop{'y' if k['copies'] == 1 else 'ies'}"
                  for k in c["contents"]]
    lines.append(f"refused records, newest first ({len(report['rejections'])} shown):")
    lines += [f"  {r['at']} {printable(r['device_id'])} {printable(r['record_id'])}: "
              f"{printable(r['reason'])}" for r in report["rejections"]]
    lines.append(f"dead letters, newest first ({len(report['dead_letters'])} shown):")
    for d in report["dead_letters"]:
        lines.append(f"  #{d['id']} {d['at']} {printable(d['topic'])} "
                     f"({printable(d['device_id'] or 'no device')}, {d['size']} bytes): "
                     f"{printable(d['reason'])}")
        lines.append(f"    starts: {printable(d['head'])}")
    keys = report["signing_keys"]
    lines.append(f"ack signing keys, last used first ({len(keys)}; a device believes only "
                 "the keys in its mqtt.central_public_key):")
    lines += [f"  {k['key_id']} first used {k['first_at']}, last {k['last_at']}"
              for k in keys]
    return "\n".join(lines)


def _open(config: Config) -> CentralConnection:
    """The central database `config` names, for a decision (a write: migrated, with
    its key, like a receiver's; run it where the receivers run). A SQLite file that is
    not there is an error, not a new empty database: the operator's tools must not
    create what the receiver should have made."""
    central = config.central
    if not central.postgres_dsn and not Path(central.database).exists():
        raise CentralStoreError(f"no central database at {central.database}: has "
                                "`appliance central` run with this configuration?")
    return open_configured(central)


def _terminal_safe_json(data: dict[str, Any]) -> str:
    """JSON whose text a terminal shows as is: json escapes only U+0000-U+001F, so the
    C1 controls (U+0080-U+009F, U+009B is an 8-bit ESC [), DEL and the other
    characters that are not printable a message brought are written as \\u escapes,
    which every JSON reader reads back the same."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n"
                   else json.dumps(c)[1:-1] for c in text)


def decide(config: Config, device_id: str, record_id: str, sha256: str,
           operator: str) -> str:
    """`--decide`: serve this content of a record id in conflict (central_store.decide)."""
    conn = _open(config)
    try:
        others = central_store.decide(conn, device_id, record_id, sha256, operator)
    finally:
        conn.close()
    return (f"record {printable(record_id)} of {printable(device_id)}: {sha256} is served "
            f"from now on (decided by {printable(operator)}); {others} other content(s) "
            "stay held, and later claims change nothing")


def show(config: Config, device_id: str, record_id: str, *, as_json: bool = False) -> str:
    """`--show`: every content held under a record id, opened, side by side, so that an
    operator decides on what the contents say, not on their hashes. It needs the key
    (run it where the receivers run, like --decide) and shows a citizen's data: only
    an operator who may decide may run it."""
    central_store.operator_words(device=device_id, record_id=record_id)
    conn = _open(config)
    try:
        held = central_store.contents(conn, device_id, record_id)
        conflict = conn.execute("SELECT state, decided_sha256, decided_by FROM conflicts "
                                "WHERE device_id=? AND record_id=?",
                                (device_id, record_id)).fetchone()
    finally:
        conn.close()
    if not held:
        raise DecisionRefused(
            f"nothing is held under record {printable(record_id)} of {printable(device_id)}")
    data = {"device_id": device_id, "record_id": record_id,
            "conflict": None if conflict is None else dict(conflict),
            "contents": [{"sha256": c["sha256"], "status": c["status"],
                          "claimed": c["claimed"], "received_at": _when(c["received_at"]),
                          "copies": c["copies"], "dossier_code": c["dossier_code"],
                          "result_codes": c["result_codes"], "files": c["files"],
                          "body": json.loads(c["body_json"])} for c in held]}
    if as_json:
        return _terminal_safe_json(data)
    state = "no conflict" if conflict is None else conflict["state"]
    lines = [f"record {printable(record_id)} of {printable(device_id)}: {len(held)} "
             f"content(s), {state}"
             + (f", decided for {conflict['decided_sha256']} by "
                f"{printable(conflict['decided_by'] or '')}"
                if conflict is not None and conflict["decided_sha256"] else "")]
    for n, c in enumerate(data["contents"], 1):
        lines.append(f"content {n}: {c['sha256']} {c['status']}"
                     f"{' claimed' if c['claimed'] else ''}, first {c['received_at']}, "
                     f"{c['copies']} cop{'y' if c['copies'] == 1 else 'ies'}")
        lines.append(f"  dossier {printable(c['dossier_code'])}, result codes "
                     f"{printable(', '.join(map(str, c['result_codes'])) or 'none')}")
        lines += [f"  file {sha} {'held' if there else 'missing'}"
                  for sha, there in c["files"].items()]
        body = json.dumps(c["body"], ensure_ascii=False, indent=2, sort_keys=True)
        # "\n" only: splitlines() also breaks at U+2028, U+2029 and U+0085, which
        # json.dumps leaves as they are, so a body could print lines of its own choosing
        # (red team 14: a forged "content 2"); printable() escapes them within the line.
        lines += ["  " + printable(line) for line in body.split("\n")]
    return "\n".join(lines)


def report(config: Config, *, last: int = DEFAULT_LAST, as_json: bool = False) -> str:
    """The report of the central database `config` names, as text or JSON. It only
    reads (db.open_for_reading), so it may run on a PostgreSQL replica and beside
    receivers of an older version."""
    conn = open_for_reading(config.central)
    try:
        # One snapshot for every query, so the figures agree with each other while the
        # receivers write.
        conn.execute("BEGIN" if conn.engine == "sqlite"
                     else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            data = build(conn, last)
        finally:
            conn.execute("ROLLBACK")
        data["unlocked"] = bool(getattr(conn, "unlocked", False))
    finally:
        conn.close()
    if as_json:
        return _terminal_safe_json(data)
    return render(data)
