"""What `appliance sync` costs a 2 GB device: the modules it loads and its resident memory.

The sync service runs beside the OCR for the device's whole life, so every megabyte it
holds is one the recognizer cannot use. It needs the outbox (sqlite3), the wire format
and paho - not Flask, gunicorn, numpy, PIL or onnxruntime, which every subcommand used
to import at start (54 MB resident before doing anything).

Measured the way a technician would: the service started against a configuration with
no broker (mqtt.host empty: it waits, records stay in SQLite), VmRSS read from
/proc/PID/status after 3 s. Python is given a bytecode cache, as on an installed
device (pip compiles the package); compiling from source costs about 1 MB more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.system import config as config_mod

REPO = Path(__file__).resolve().parents[1]
# 25 MB, read as MiB: VmRSS is reported in kB (KiB).
RSS_BOUND_KB = 25 * 1024
SETTLE_S = 3.0
# What the service logs once it is up and waiting (publisher.py, no broker configured).
WAITING = "records wait in SQLite"
FORBIDDEN = {"flask", "werkzeug", "jinja2", "gunicorn", "numpy", "PIL", "onnxruntime",
             "sane", "_sane"}
# Third-party packages the sync service may hold (sqlite3 is the standard library's).
# orjson reads its small messages first (sync/wire.py; a few hundred KB resident).
ALLOWED_THIRD_PARTY = {"paho", "orjson"}

MODULES = """
import json, os, signal, sys, threading

def report():
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Timer(2.0, report).start()
from appliance.cli import main
main(sys.argv[2:])
"""


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(config_mod.dump(config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp_path / "data")}, mqtt={"host": ""})),
        encoding="utf-8")
    return cfg


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID", "WATCHDOG_USEC",
                        config_mod.CONFIG_ENV)}
    env.update(extra)
    return env


def _third_party(modules: list[str]) -> set[str]:
    tops = {name.split(".")[0] for name in modules}
    return {t for t in tops
            if t not in sys.stdlib_module_names and t != "appliance"
            # Put there by the venv's .pth files at start-up, not by the service.
            and not t.startswith("__editable__")
            and t not in ("_distutils_hack", "__main__", "sitecustomize", "usercustomize")}


def test_sync_imports_only_what_it_runs(tmp_path):
    out = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", MODULES, str(out), "--config", str(_config(tmp_path)), "sync"],
        env=_env(), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    modules = json.loads(out.read_text())
    assert "sqlite3" in modules and "appliance.sync.publisher" in modules
    assert {m.split(".")[0] for m in modules} & FORBIDDEN == set()
    assert _third_party(modules) <= ALLOWED_THIRD_PARTY, sorted(_third_party(modules))


def _entry_point() -> list[str]:
    script = Path(sys.executable).parent / "appliance"
    return [str(script)] if script.exists() else [sys.executable, "-m", "appliance"]


def _rss_after(argv: list[str], env: dict[str, str], log: Path, until_log: str = "") -> int:
    """VmRSS after SETTLE_S, or (until_log) once the log says so: then the service
    has imported all it runs, which is all a run that only fills the cache needs."""
    start = log.read_text().count(until_log) if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
    try:
        if until_log:
            end = time.monotonic() + 30
            while log.read_text().count(until_log) == start and time.monotonic() < end:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
        else:
            time.sleep(SETTLE_S)
        assert proc.poll() is None, log.read_text()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        (line,) = [ln for ln in status.splitlines() if ln.startswith("VmRSS:")]
        return int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_sync_waiting_for_a_broker_stays_under_the_memory_bound(tmp_path):
    argv = [*_entry_point(), "--config", str(_config(tmp_path)), "sync"]
    env = _env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    log = tmp_path / "sync.log"
    _rss_after(argv, env, log, until_log=WAITING)  # writes the bytecode cache
    rss_kb = _rss_after(argv, env, log)
    print(f"appliance sync, no broker, after {SETTLE_S:.0f} s: VmRSS {rss_kb} kB "
          f"({rss_kb / 1024:.1f} MiB)")
    assert rss_kb <= RSS_BOUND_KB, f"VmRSS {rss_kb} kB > {RSS_BOUND_KB} kB\n{log.read_text()}"
