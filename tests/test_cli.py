"""The command-line contracts, run as a user would run them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.system import config as config_mod
from tests.helpers.sync_rig import brokers  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
SERVICES = ["web", "worker", "sync", "central", "demo-scanner", "run"]


def _env(config: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID", "WATCHDOG_USEC")}
    env.pop(config_mod.CONFIG_ENV, None)
    if config:
        env[config_mod.CONFIG_ENV] = str(config)
    return env


def run(args: list[str], config: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args], env=_env(config),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def write_config(path: Path, data_dir: Path, **sections: dict[str, object]) -> Path:
    path.write_text(config_mod.dump(config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(data_dir)}, **sections)), encoding="utf-8")
    return path


def bad_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[mqtt]\nhots = "broker"\n', encoding="utf-8")
    return cfg


def test_status_json_on_a_fresh_device(tmp_path):
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data")
    result = run(["status", "--json"], cfg)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["queue_depth"] == 0
    assert status["oldest_undelivered_age_s"] is None
    assert status["last_delivery_at"] is None
    assert "scanner_state" in status
    assert status["models"], "the manifest lists the OCR models"
    assert all(len(m["sha256"]) == 64 for m in status["models"])


def test_bad_config_is_refused_naming_the_key(tmp_path):
    result = run(["check-config"], bad_config(tmp_path))
    assert result.returncode == 2
    assert "mqtt.hots" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("command", SERVICES)
def test_every_service_refuses_a_bad_config_with_exit_2(tmp_path, command, where):
    """One exit code for one mistake: sync used to exit 1, the demo scanner never read
    the file. `--config` is honoured before and after the subcommand."""
    bad = str(bad_config(tmp_path))
    args = ["--config", bad, command] if where == "before" else [command, "--config", bad]
    result = run(args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr and "mqtt.hots" in result.stderr


def _start(args: list[str], env_config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "appliance", *args],
                                env=_env(env_config), stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def test_sync_honours_the_top_level_config_option(tmp_path):
    """`appliance --config FILE sync` used to read $APPLIANCE_CONFIG instead of FILE (the
    subcommand's own --config default overwrote the top-level value)."""
    good = write_config(tmp_path / "good.toml", tmp_path / "data")
    log = tmp_path / "sync.log"
    proc = _start(["--config", str(good), "sync"], bad_config(tmp_path), log)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "data" / "appliance.sqlite3").exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    assert "configuration error" not in log.read_text()


def test_central_honours_the_top_level_config_option(tmp_path):
    # The good file has no broker: the receiver refuses that in one logged line.
    good = write_config(tmp_path / "good.toml", tmp_path / "data",
                        central={"database": str(tmp_path / "central.sqlite3")})
    result = subprocess.run([sys.executable, "-m", "appliance", "--config", str(good), "central"],
                            env=_env(bad_config(tmp_path)), capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 1, result.stderr
    assert "mqtt.host is empty" in result.stderr
    assert "configuration error" not in result.stderr


HANDLERS = """
import json, logging, sys
import {module} as target

def body(config, stop, notify=None, **kwargs):
    print(json.dumps([[type(h).__name__, getattr(h, "_extra", None)]
                      for h in logging.getLogger().handlers]), flush=True)

target.{function} = body
from appliance.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(("command", "module", "function"), [
    ("sync", "appliance.sync.publisher", "run_publisher"),
    ("central", "appliance.central.receiver", "run_receiver"),
])
def test_sync_and_central_log_to_the_journal_under_their_identifier(tmp_path, command, module,
                                                                    function):
    """Under systemd (stderr is the journal stream) every service logs through
    JournalHandler tagged appliance-<service>; sync and central used basicConfig."""
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data",
                       central={"database": str(tmp_path / "central.sqlite3")})
    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as err:
        st = os.fstat(err.fileno())
        env = dict(_env(), JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        result = subprocess.run(
            [sys.executable, "-c", HANDLERS.format(module=module, function=function),
             "--config", str(cfg), command],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, stderr.read_text()
    handlers = json.loads(result.stdout.strip().splitlines()[-1])
    assert ["JournalHandler", {"SYSLOG_IDENTIFIER": f"appliance-{command}"}] in handlers


def test_help_lists_every_command_without_importing_them():
    code = ("import sys, contextlib, io\n"
            "from appliance.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out, "
            "contextlib.suppress(SystemExit):\n"
            "    build_parser().parse_args(['--help'])\n"
            "print(out.getvalue())\n"
            "print(sorted(m for m in sys.modules if m.startswith('appliance.')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=REPO, env=_env())
    assert result.returncode == 0, result.stderr
    for command in [*SERVICES, "ocr", "status", "check-config", "bench"]:
        assert command in result.stdout
    loaded = result.stdout.strip().splitlines()[-1]
    assert "appliance.web" not in loaded and "appliance.sync" not in loaded, loaded


def test_demo_supervisor_does_not_import_the_cli():
    """The old `cli` <-> `demo.supervisor` cycle: the supervisor took stop_on_signals from
    the CLI module."""
    code = ("import sys\nimport appliance.demo.supervisor\n"
            "print('appliance.cli' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=REPO, env=_env())
    assert result.stdout.strip() == "False", result.stderr
    source = (REPO / "appliance" / "demo" / "supervisor.py").read_text(encoding="utf-8")
    assert "appliance.cli" not in source


def kept_sessions(broker) -> tuple[list[str], list[str]]:
    """(every client id that asked the broker for a kept session, from its log; those
    whose session the broker still holds). Each is asked by connecting under its id
    without a clean start: CONNACK says whether a session was there; this connection
    asks for none (no expiry), so it ends with it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    asked = sorted(set(re.findall(r"New client connected from \S+ as (\S+) \(p\d, c0,",
                                  broker.log())))
    kept = []
    for client_id in asked:
        present: list[bool] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.on_connect = lambda _c, _u, flags, *_a, seen=present: seen.append(
            bool(flags.session_present))
        client.connect("127.0.0.1", broker.port, clean_start=False)
        client.loop_start()
        try:
            deadline = time.monotonic() + 10
            while not present:
                assert time.monotonic() < deadline, f"no CONNACK for {client_id}"
                time.sleep(0.05)
        finally:
            client.disconnect()
            client.loop_stop()
        if present[0]:
            kept.append(client_id)
    return asked, kept


@pytest.mark.timeout(300)
def test_bench_outbox_prints_json(brokers):  # noqa: F811 (fixture)
    mosquitto = brokers.start()
    result = run(["bench", "outbox", "--json", "--port", str(mosquitto.port),
                  "--records", "20", "--scans", "2", "--scan-bytes", "4096",
                  "--rounds", "2"], timeout=240)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    kinds = [v for v in figures.values() if isinstance(v, dict)]
    assert sorted(k["records"] for k in kinds) == [2, 20]
    for kind in kinds:
        assert kind["raw_records_per_s"] > 0 and kind["outbox_records_per_s"] > 0
        # Two rounds, each its raw and outbox phases back to back; the ratio is their
        # median (of two: their mean).
        rounds = kind["round_ratios"]
        assert len(rounds) == 2 and all(r > 0 for r in rounds), kind
        assert kind["ratio"] == pytest.approx(sum(rounds) / 2)
        # Each process's CPU, measured: a record costs each of them something.
        for cpu in ("raw_cpu_us_per_record", "publisher_cpu_us_per_record",
                    "receiver_cpu_us_per_record"):
            assert 0 < kind[cpu] < 5e6, (cpu, kind)
    assert figures["ratio"] == pytest.approx(min(k["ratio"] for k in kinds))
    # No session of the bench's receivers or devices is left at the broker (each kept
    # a copy of every later round's records for a week).
    asked, kept = kept_sessions(mosquitto)
    assert len(asked) == 8 and kept == [], (asked, kept)  # 2 kinds x 2 rounds x 2 services


RUNNING_MODULES = """
import atexit, json, os, signal, sys, threading

def report():
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), flush=True)

def stop():
    os.kill(os.getpid(), signal.SIGTERM)

atexit.register(report)  # a command that ends by itself
timer = threading.Timer(float(sys.argv[1]), stop)  # a service: stopped as systemd would
timer.daemon = True
timer.start()
from appliance.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize(("command", "forbidden"), [
    ("check-config", {"flask", "gunicorn", "paho", "numpy", "PIL", "onnxruntime", "sane"}),
    ("status --json", {"flask", "gunicorn", "paho", "numpy", "PIL", "onnxruntime", "sane"}),
    ("worker", {"flask", "werkzeug", "gunicorn", "paho"}),
])
def test_each_subcommand_imports_only_what_it_runs(tmp_path, command, forbidden):
    """Every subcommand used to import Flask, gunicorn, numpy and PIL at start."""
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-c", RUNNING_MODULES, "5", "--config", str(cfg), *command.split()],
        env=_env(), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    (loaded,) = [json.loads(line) for line in result.stdout.splitlines()
                 if line.startswith('["')]
    assert set(loaded) & forbidden == set()
