from __future__ import annotations

import io
import logging
import os

import pytest
from systemd import journal

from appliance.system.logging import setup_logging, under_systemd

pytestmark = pytest.mark.usefixtures("restore_root_logger")


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
    assert isinstance(handler, journal.JournalHandler)
    assert handler._extra == {"SYSLOG_IDENTIFIER": "appliance-sync"}
    # No journald here: sending must still not raise.
    logging.getLogger("appliance.sync").warning("outbox row 7 acknowledged late")


def test_inherited_journal_stream_for_another_file_is_ignored(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        assert not under_systemd({"JOURNAL_STREAM": "1:2"}, stream)
        assert not under_systemd({"JOURNAL_STREAM": "garbage"}, stream)


def test_a_shell_on_a_systemd_host_is_not_a_service():
    # Without INVOCATION_ID, daemon.booted() alone must not divert a technician's output.
    assert not under_systemd({}, io.StringIO())
