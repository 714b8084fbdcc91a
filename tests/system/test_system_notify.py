from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from appliance.system.notify import ServiceNotifier, WatchdogKicker, run_watched_loop


def test_ready_watchdog_stopping_reach_the_socket(notify_socket):
    n = ServiceNotifier()
    assert n.ready()
    assert n.watchdog()
    assert n.stopping()
    got = [notify_socket.recv() for _ in range(3)]
    assert [m.text for m in got] == ["READY=1", "WATCHDOG=1", "STOPPING=1"]
    assert {m.pid for m in got} == {os.getpid()}


def test_status_travels_as_one_line(notify_socket):
    n = ServiceNotifier()
    n.ready("scanner test:0 ready")
    n.status("queue: 3 dossiers\nline two")
    assert notify_socket.recv().text == "READY=1\nSTATUS=scanner test:0 ready"
    assert notify_socket.recv().text == "STATUS=queue: 3 dossiers line two"


def test_callable_form_is_what_services_take(notify_socket):
    notify = ServiceNotifier()
    for message in ("READY=1", "WATCHDOG=1"):
        notify(message)
    assert [notify_socket.recv().text for _ in range(2)] == ["READY=1", "WATCHDOG=1"]


def test_without_notify_socket_everything_is_a_noop(monkeypatch, caplog):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = ServiceNotifier()
    with caplog.at_level(logging.DEBUG):
        assert n.ready() is False
        assert n.watchdog() is False
        assert n.stopping() is False
        n("READY=1")
    assert caplog.records == []


def test_missing_socket_path_is_logged_once_and_not_raised(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "no-such-socket"))
    n = ServiceNotifier()
    with caplog.at_level(logging.WARNING, logger="appliance.system.notify"):
        for _ in range(3):
            assert n.ready() is False
            assert n.watchdog() is False
    assert len(caplog.records) == 1
    assert "Cannot reach the systemd notification socket" in caplog.records[0].getMessage()


def test_stale_socket_file_is_not_fatal(monkeypatch, caplog):
    # A socket file left behind by a dead manager: connecting is refused.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        path = f"/tmp/sdn-stale-{os.getpid()}"
        s.bind(path)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        with caplog.at_level(logging.WARNING, logger="appliance.system.notify"):
            assert ServiceNotifier().ready() is False
        assert len(caplog.records) == 1
    finally:
        os.unlink(path)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "60000000"}, 60.0),
        ({"WATCHDOG_USEC": "1500000"}, 1.5),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "sixty"}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}, 60.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert ServiceNotifier(environ=env, pid=4242).watchdog_interval() == expected


def test_watchdog_interval_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert ServiceNotifier().watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert ServiceNotifier().watchdog_interval() is None


def test_kicker_rate_limits_to_half_the_interval():
    sent: list[str] = []
    now = [100.0]
    kicker = WatchdogKicker(sent.append, 10.0, clock=lambda: now[0])
    assert kicker.kick_if_due()
    now[0] += 4.9
    assert not kicker.kick_if_due()
    now[0] += 0.1
    assert kicker.kick_if_due()
    assert sent == ["WATCHDOG=1", "WATCHDOG=1"]


def test_kicker_without_watchdog_sends_nothing():
    sent: list[str] = []
    assert not WatchdogKicker(sent.append, None).kick_if_due()
    assert sent == []


def test_watched_loop_reports_ready_kicks_and_stopping(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: a kick every 0.1 s
    stop = threading.Event()
    steps = []

    def step() -> None:
        steps.append(1)
        if len(steps) == 5:
            stop.set()

    started = time.monotonic()
    run_watched_loop(step, ServiceNotifier(), stop, pause_seconds=30, ready_status="up")
    # The 30 s pause was capped at the kick period (0.1 s), or this would take 2 min.
    assert time.monotonic() - started < 5
    texts = [m.text for m in notify_socket.drain()]
    assert texts[0] == "READY=1\nSTATUS=up"
    assert texts[-1] == "STOPPING=1"
    kicks = texts[1:-1]
    # Normally one kick per step; a timer waking a hair early may skip one.
    assert set(kicks) == {"WATCHDOG=1"} and 3 <= len(kicks) <= 5


def test_ready_can_be_left_to_the_caller(notify_socket):
    stop = threading.Event()
    run_watched_loop(stop.set, ServiceNotifier(), stop, ready_status=None)
    assert [m.text for m in notify_socket.drain()] == ["STOPPING=1"]


def test_a_hung_main_loop_stops_the_kicks(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    stop = threading.Event()
    hang = threading.Event()
    release = threading.Event()
    steps = []

    def step() -> None:
        steps.append(1)
        if len(steps) == 3:
            hang.set()
            release.wait(10)

    worker = threading.Thread(
        target=run_watched_loop, args=(step, ServiceNotifier(), stop), daemon=True
    )
    worker.start()
    assert hang.wait(5)
    notify_socket.drain(0.3)  # what was sent before the hang
    # Stuck for six watchdog intervals: systemd must hear nothing.
    assert notify_socket.drain(0.6) == []
    release.set()
    assert notify_socket.recv().text == "WATCHDOG=1"
    stop.set()
    worker.join(5)
    assert notify_socket.drain()[-1].text == "STOPPING=1"


def test_a_failing_step_propagates_without_a_kick(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")

    def step() -> None:
        raise RuntimeError("scanner vanished")

    with pytest.raises(RuntimeError):
        run_watched_loop(step, ServiceNotifier(), threading.Event())
    assert [m.text for m in notify_socket.drain()] == ["READY=1", "STOPPING=1"]


CHILD = textwrap.dedent(
    """
    import threading
    from appliance.system.notify import ServiceNotifier, run_watched_loop

    stop = threading.Event()
    count = []

    def step():
        count.append(1)
        if len(count) == 4:
            stop.set()

    notifier = ServiceNotifier()
    run_watched_loop(step, notifier, stop, pause_seconds=0.05, ready_status="child")
    notifier("STATUS=done")
    """
)


def _run_child(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **env_extra)
    return subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=30
    )


def test_notifier_works_from_another_process(notify_socket):
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env=dict(os.environ, WATCHDOG_USEC="100000"),
        stderr=subprocess.PIPE,
        text=True,
    )
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    got = notify_socket.drain(0.5)
    texts = [m.text for m in got]
    assert texts[0] == "READY=1\nSTATUS=child"
    assert texts[-2:] == ["STOPPING=1", "STATUS=done"]
    assert set(texts[1:-2]) == {"WATCHDOG=1"} and 2 <= len(texts[1:-2]) <= 4
    # The kernel's credentials prove the child, not this test, sent them.
    assert {m.pid for m in got} == {proc.pid}
    assert time.monotonic() - started < 20


def test_child_that_is_not_the_watched_pid_does_not_kick(notify_socket):
    proc = _run_child({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    assert proc.returncode == 0, proc.stderr
    texts = [m.text for m in notify_socket.drain(0.5)]
    assert "WATCHDOG=1" not in texts
    assert texts[0].startswith("READY=1")
