from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.system.logging import JournalHandler, setup_logging, under_systemd


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_appliance_handler", False)]


def test_outside_systemd_a_concise_line_goes_to_stderr():
    out = io.StringIO()
    setup_logging("worker", "debug", environ={}, stream=out)
    logging.getLogger("appliance.worker").info("dossier %s: page %d saved", "D-1", 2)
    line = out.getvalue().strip()
    assert line.endswith("INFO appliance.worker: dossier D-1: page 2 saved")
    assert logging.getLogger().level == logging.DEBUG


def test_calling_again_replaces_instead_of_duplicating():
    out = io.StringIO()
    setup_logging("web", environ={}, stream=out)
    setup_logging("web", "WARNING", environ={}, stream=out)
    assert len(_ours()) == 1
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert out.getvalue().count("\n") == 1


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="LOUD"):
        setup_logging("web", "LOUD", environ={}, stream=io.StringIO())


def test_journal_stream_naming_our_stderr_selects_the_journal(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert under_systemd(env, stream)
        setup_logging("sync", environ=env, stream=stream)
    (handler,) = _ours()
    assert isinstance(handler, JournalHandler)
    assert handler.identifier == "appliance-sync"
    # No journald here: sending must still not raise.
    logging.getLogger("appliance.sync").warning("outbox row 7 acknowledged late")


def test_inherited_journal_stream_for_another_file_is_ignored(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        assert not under_systemd({"JOURNAL_STREAM": "1:2"}, stream)
        assert not under_systemd({"JOURNAL_STREAM": "garbage"}, stream)


def test_a_shell_on_a_systemd_host_is_not_a_service():
    # Without INVOCATION_ID, daemon.booted() alone must not divert a technician's output.
    assert not under_systemd({}, io.StringIO())


def _parse_journal_datagram(data: bytes) -> dict[str, str]:
    """journald's side of the native protocol (systemd's journald-native.c, in short)."""
    fields: dict[str, str] = {}
    while data:
        line_end = data.index(b"\n")
        head = data[:line_end]
        if b"=" in head:
            name, value = head.split(b"=", 1)
            data = data[line_end + 1:]
        else:
            name = head
            (size,) = struct.unpack("<Q", data[line_end + 1:line_end + 9])
            value = data[line_end + 9:line_end + 9 + size]
            assert data[line_end + 9 + size:line_end + 10 + size] == b"\n"
            data = data[line_end + 10 + size:]
        fields[name.decode()] = value.decode()
    return fields


@pytest.fixture
def journald() -> Iterator[tuple[socket.socket, Path]]:
    # A short folder of its own: AF_UNIX paths are limited to 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="jd-", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / "socket"))
    sock.settimeout(5)
    try:
        yield sock, folder / "socket"
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_journal_records_carry_identifier_priority_and_message(journald):
    sock, path = journald
    handler = JournalHandler("appliance-sync", socket_path=str(path))
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("appliance.sync.publisher")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outbox row %d acknowledged late", 7)
        fields = _parse_journal_datagram(sock.recv(65536))
        assert fields["MESSAGE"] == "appliance.sync.publisher: outbox row 7 acknowledged late"
        assert fields["PRIORITY"] == "4"
        assert fields["SYSLOG_IDENTIFIER"] == "appliance-sync"
        assert fields["LOGGER"] == "appliance.sync.publisher"
        assert fields["CODE_FUNC"] == "test_journal_records_carry_identifier_priority_and_message"
        # The raw format arguments never become fields of their own.
        assert not {"CODE_ARGS", "ARGS", "MSG"} & set(fields)
        try:
            raise RuntimeError("database is locked")
        except RuntimeError:
            logger.exception("outbox row %d", 8)
        fields = _parse_journal_datagram(sock.recv(65536))
        assert fields["PRIORITY"] == "3"
        assert fields["MESSAGE"].startswith("appliance.sync.publisher: outbox row 8\nTraceback")
        assert fields["MESSAGE"].endswith("RuntimeError: database is locked")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def test_an_overlong_message_is_cut_not_lost(journald):
    sock, path = journald
    handler = JournalHandler("appliance-web", socket_path=str(path))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a" * 300_000, None, None)
    handler.emit(record)
    fields = _parse_journal_datagram(sock.recv(400_000))
    assert fields["MESSAGE"].endswith(" [truncated]")
    assert len(fields["MESSAGE"]) < 70_000
    handler.close()


def test_no_journald_is_not_fatal(tmp_path, capsys):
    handler = JournalHandler("appliance-sync", socket_path=str(tmp_path / "missing"))
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None))
    handler.close()
    assert "Logging error" in capsys.readouterr().err
