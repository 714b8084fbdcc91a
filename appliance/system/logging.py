"""Where the services' log records go: the journal under systemd, stderr elsewhere.

Rule for every message in the appliance: English, and no personal data beyond IDs.
Log a dossier code, a paper ordinal, a device ID, an outbox row id, an error class -
never a citizen's name, ID-card or social-insurance number, date of birth, address,
phone, OCR text or extracted field values, image bytes or file names built from them.
The journal is readable by technicians and is kept and shipped far longer than a
dossier's working copy, and the seed requires that digitization does no harm to
citizens' personal data; IDs are enough to find the record in the database, where
access is controlled. Messages are English so a technician can search them and so the
kiosk's Vietnamese texts stay in the translation files, not in logs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

STDERR_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Journal records carry their own timestamp and priority; the logger name is enough.
JOURNAL_FORMAT = "%(name)s: %(message)s"
_HANDLER_MARK = "_appliance_handler"


def _stderr_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when ``JOURNAL_STREAM`` names this very stderr (device:inode).

    Comparing, not just testing presence, matters because the variable is inherited:
    a `python -c` started from a service with its stderr piped elsewhere still has it.
    """
    value = environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        dev, ino = (int(part) for part in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def under_systemd(environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """Whether this process is a systemd service whose records belong in the journal.

    ``daemon.booted()`` alone is true for a technician's shell on the appliance too,
    where output must stay on the terminal; so a booted host counts only together with
    ``INVOCATION_ID``, which systemd sets for the processes of a unit.
    """
    env = environ if environ is not None else os.environ
    if _stderr_is_journal(env, stream if stream is not None else sys.stderr):
        return True
    if not env.get("INVOCATION_ID"):
        return False
    from systemd import daemon

    return bool(daemon.booted())


def setup_logging(
    service: str,
    level: str = "INFO",
    *,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger once per process for service ``service``.

    Under systemd records go through ``JournalHandler`` with
    ``SYSLOG_IDENTIFIER=appliance-<service>``, so ``journalctl -t appliance-worker``
    works and priorities survive; elsewhere a concise line goes to stderr. Calling again
    replaces the handler installed before instead of duplicating every line.
    ``environ`` and ``stream`` exist for tests.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    out = stream if stream is not None else sys.stderr
    handler: logging.Handler
    if under_systemd(environ, out):
        # Imported here, not at the top: outside systemd libsystemd is not needed, and
        # `appliance sync` is measured against a memory bound on a 2 GB device.
        from systemd import journal

        handler = journal.JournalHandler(SYSLOG_IDENTIFIER=f"appliance-{service}")
        handler.setFormatter(logging.Formatter(JOURNAL_FORMAT))
    else:
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
