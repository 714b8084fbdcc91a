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

Records reach journald over its native protocol (one datagram of ``FIELD=value``
lines on ``/run/systemd/journal/socket``, the format ``sd_journal_sendv`` writes),
implemented here in a few lines instead of through libsystemd: loading libsystemd
and its compression and crypto libraries costs every service about 1.7 MB of resident
memory, and the sync service is held to 25 MB beside the OCR on a 2 GB device.
Unlike python-systemd's handler, no record attribute is copied into a field
unasked: the format arguments would put whatever they hold into the journal.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from collections.abc import Mapping
from typing import TextIO

STDERR_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Journal records carry their own timestamp and priority; the logger name is enough.
JOURNAL_FORMAT = "%(name)s: %(message)s"
_HANDLER_MARK = "_appliance_handler"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
# sd_booted(3): the directory exists exactly when systemd is PID 1.
SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
# A datagram must fit the socket's send buffer (about 208 KiB by default); messages
# here are IDs and short texts, so anything longer is cut rather than lost.
MAX_MESSAGE_BYTES = 64 * 1024
_LENGTH = struct.Struct("<Q")


def journal_priority(levelno: int) -> int:
    """syslog priority of a logging level, as python-systemd maps them."""
    for bound, priority in ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                            (logging.ERROR, 3), (logging.CRITICAL, 2)):
        if levelno <= bound:
            return priority
    return 1


def journal_field(name: str, value: str) -> bytes:
    """One field in the native protocol: ``NAME=value`` and a newline; when the value
    holds a newline (a traceback): the name, a newline, the length as 64-bit
    little-endian, the raw bytes and a newline."""
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return name.encode("ascii") + b"\n" + _LENGTH.pack(len(data)) + data + b"\n"
    return name.encode("ascii") + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """Sends each record to journald with ``SYSLOG_IDENTIFIER`` and the syslog priority.

    Fields: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, LOGGER, THREAD_NAME, PROCESS_NAME,
    CODE_FILE, CODE_LINE, CODE_FUNC (what python-systemd's handler sends, minus the
    record's raw arguments). A failed send goes to ``handleError``, as for any handler:
    a missing journal never stops a service.
    """

    def __init__(self, identifier: str, socket_path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.socket_path = socket_path
        self._sock: socket.socket | None = None

    def payload(self, record: logging.LogRecord) -> bytes:
        message = self.format(record)
        raw = message.encode("utf-8", "replace")
        if len(raw) > MAX_MESSAGE_BYTES:
            message = raw[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore") + " [truncated]"
        fields = (
            ("MESSAGE", message),
            ("PRIORITY", str(journal_priority(record.levelno))),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("THREAD_NAME", record.threadName or ""),
            ("PROCESS_NAME", record.processName or ""),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
        )
        return b"".join(journal_field(name, value) for name, value in fields)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.payload(record)
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX,
                                           socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self.socket_path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        finally:
            self.release()
        super().close()


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

    A booted host (sd_booted: ``/run/systemd/system`` exists) alone is true for a
    technician's shell on the appliance too,
    where output must stay on the terminal; so a booted host counts only together with
    ``INVOCATION_ID``, which systemd sets for the processes of a unit.
    """
    env = environ if environ is not None else os.environ
    if _stderr_is_journal(env, stream if stream is not None else sys.stderr):
        return True
    return bool(env.get("INVOCATION_ID")) and os.path.isdir(SYSTEMD_RUNTIME_DIR)


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
        handler = JournalHandler(f"appliance-{service}")
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
