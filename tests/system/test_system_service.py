"""The one service bootstrap: configuration, exit codes, signals, notifier, watchdog."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.system import config as config_mod
from appliance.system.config import Config
from appliance.system.errors import ConfigError
from appliance.system.notify import ServiceNotifier, kick_watchdog_if_due
from appliance.system.service import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    run_service,
    service,
    stop_on_signals,
)

pytestmark = pytest.mark.usefixtures("restore_root_logger")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(config_mod.dump(config_mod.with_overrides(
        Config(), device={"id": "kiosk-77"}, paths={"data_dir": str(tmp_path)})),
        encoding="utf-8")
    return path


def test_body_gets_the_named_configuration_a_stop_event_and_the_notifier(config_file):
    got: list[object] = []

    def body(config: Config, stop: threading.Event, notifier: ServiceNotifier) -> None:
        got.extend([config, stop, notifier])

    assert run_service("sync", config_file, body) == EXIT_OK
    config, stop, notifier = got
    assert isinstance(config, Config) and config.device.id == "kiosk-77"
    assert isinstance(stop, threading.Event) and not stop.is_set()
    assert isinstance(notifier, ServiceNotifier)


def test_the_environment_names_the_file_when_no_option_does(config_file, monkeypatch):
    monkeypatch.setenv(config_mod.CONFIG_ENV, str(config_file))
    with service("worker", None, handle_signals=False) as svc:
        assert svc.config.device.id == "kiosk-77"
        assert svc.name == "worker"


def test_a_bad_configuration_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nthreds = 4\n", encoding="utf-8")
    ran: list[bool] = []
    assert run_service("central", bad, lambda *a: ran.append(True)) == EXIT_CONFIG
    assert ran == []
    assert "appliance central: configuration error: web.threds" in capsys.readouterr().err


def test_a_configuration_error_raised_by_the_body_is_exit_2_too(config_file):
    def body(*_args: object) -> None:
        raise ConfigError("web.bind: bad override")

    assert run_service("web", config_file, body) == EXIT_CONFIG


def test_a_known_failure_is_one_logged_line_and_exit_1(config_file, caplog):
    class Refused(Exception):
        pass

    def body(*_args: object) -> None:
        raise Refused("broker refused the certificate")

    with caplog.at_level(logging.ERROR):
        assert run_service("sync", config_file, body, failures=(Refused,)) == EXIT_FAILURE
    assert [r.getMessage() for r in caplog.records] == [
        "sync stopped: broker refused the certificate"]


def test_an_unexpected_error_propagates(config_file):
    def body(*_args: object) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_service("sync", config_file, body)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_set_the_stop_event_then_handlers_come_back(config_file, signum):
    before = signal.getsignal(signum)
    seen: list[bool] = []

    def body(_config: Config, stop: threading.Event, _notifier: ServiceNotifier) -> None:
        os.kill(os.getpid(), signum)
        seen.append(stop.wait(5))

    assert run_service("worker", config_file, body) == EXIT_OK
    assert seen == [True]
    assert signal.getsignal(signum) is before


def test_off_the_main_thread_signals_are_left_alone(config_file):
    before = signal.getsignal(signal.SIGTERM)
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(run_service("sync", config_file, lambda *a: None)))
    worker.start()
    worker.join(10)
    assert codes == [EXIT_OK]
    assert signal.getsignal(signal.SIGTERM) is before


def test_web_leaves_signals_to_gunicorn(config_file):
    before = signal.getsignal(signal.SIGTERM)
    with service("web", config_file, handle_signals=False):
        assert signal.getsignal(signal.SIGTERM) is before


def test_stop_on_signals_in_a_real_process():
    code = ("import os, signal\n"
            "from appliance.system.service import stop_on_signals\n"
            "stop = stop_on_signals()\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "raise SystemExit(0 if stop.wait(5) else 1)\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
    assert callable(stop_on_signals)


def test_kick_if_due_rate_limits_watchdog_kicks(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # 0.4 s: at most one kick per 0.2 s
    notifier = ServiceNotifier()
    assert notifier.kick_if_due()
    assert not notifier.kick_if_due()  # a progress callback firing again at once
    time.sleep(0.25)
    assert notifier.kick_if_due()
    assert [m.text for m in notify_socket.drain()] == ["WATCHDOG=1", "WATCHDOG=1"]


def test_kick_if_due_from_several_threads_sends_one_kick(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    notifier = ServiceNotifier()
    threads = [threading.Thread(target=notifier.kick_if_due) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m.text for m in notify_socket.drain()] == ["WATCHDOG=1"]


def test_kick_if_due_is_a_noop_when_not_watched(notify_socket):
    notifier = ServiceNotifier()
    assert notifier.kicker.period is None
    assert not notifier.kick_if_due()
    assert notify_socket.drain() == []


def test_kick_watchdog_if_due_accepts_any_notify_callable(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    sent: list[str] = []
    assert not kick_watchdog_if_due(sent.append)
    assert not kick_watchdog_if_due(None)
    assert kick_watchdog_if_due(ServiceNotifier())
    assert sent == []
    assert [m.text for m in notify_socket.drain()] == ["WATCHDOG=1"]


def test_outside_systemd_libsystemd_is_not_loaded(tmp_path, config_file):
    """Memory on a 2 GB device: sd_notify and the journal handler are imported only
    when systemd supervises the process."""
    code = ("import sys\n"
            "from appliance.system.service import run_service\n"
            f"run_service('sync', {str(config_file)!r}, lambda c, s, n: n('READY=1'))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'systemd'))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
