"""A real mosquitto broker for tests, stopped by PID whatever happens to the test.

Usage:
    broker = start_mosquitto(tmp_path / "broker")            # free loopback port
    broker = start_mosquitto(tmp_path / "broker", port=p)   # same port, e.g. after kill()
    broker.kill(); broker = start_mosquitto(same_dir, port=broker.port)   # crash + restart
    broker.stop()

The folder holds the config, the persistence file and the log, so a restart on the
same folder sees what the killed broker had saved (with SIGKILL: only up to its last
autosave, which is the point of the crash tests). As root, mosquitto would drop to
user `mosquitto` and fail to write the folder, so the config says `user root`.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.bench.local import free_port  # noqa: F401 (re-exported to tests)
from appliance.system.process import die_with_parent

MOSQUITTO = "/usr/sbin/mosquitto"
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """Broker side of a TLS listener: CA that signed the clients, server cert and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True




class MosquittoProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, folder: Path) -> None:
        self.proc = proc
        self.port = port
        self.folder = folder
        self.host = "127.0.0.1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (mosquitto saves its state), then SIGKILL if it hangs."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        _unregister(self)

    def kill(self) -> None:
        """SIGKILL: a crash; whatever was not yet autosaved is lost."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()
        _unregister(self)


_LIVE: dict[int, MosquittoProcess] = {}


def _unregister(broker: MosquittoProcess) -> None:
    _LIVE.pop(broker.pid, None)


def _stop_leftovers() -> None:
    """Last resort for brokers a crashed test never stopped (pytest fixtures also stop)."""
    for broker in list(_LIVE.values()):
        broker.kill()


atexit.register(_stop_leftovers)


def _config(folder: Path, port: int, tls: TlsFiles | None, extra: str,
            anonymous: bool) -> str:
    lines = [
        "user root" if os.geteuid() == 0 else "",
        "per_listener_settings false",
        f"allow_anonymous {'true' if anonymous else 'false'}",
        "persistence true",
        f"persistence_location {folder}/",
        "persistence_file mosquitto.db",
        "autosave_interval 1800",
        "max_queued_messages 100000",
        # As in provisioning/mosquitto-broker.conf: no 40 ms Nagle delay on acks.
        "set_tcp_nodelay true",
        "max_inflight_messages 100",
        f"log_dest file {folder / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        f"listener {port} 127.0.0.1",
    ]
    if tls is not None:
        lines += [
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            f"require_certificate {'true' if tls.require_certificate else 'false'}",
            "use_identity_as_username true" if tls.require_certificate else "",
        ]
    lines.append(extra)
    return "\n".join(line for line in lines if line) + "\n"


PROVISIONING_BROKER_CONF = (Path(__file__).resolve().parents[2] / "provisioning"
                            / "mosquitto-broker.conf")
# What the shipped broker configuration says about who a client is; the listener, the
# paths and the CA are each test's own.
IDENTITY_DIRECTIVES = ("use_identity_as_username", "use_username_as_clientid")


def shipped_setting(name: str) -> int:
    """A number provisioning/mosquitto-broker.conf sets (max_packet_size, say)."""
    found = re.search(rf"^{name}\s+(\d+)", PROVISIONING_BROKER_CONF.read_text(encoding="utf-8"),
                      re.MULTILINE)
    assert found, f"provisioning/mosquitto-broker.conf sets {name}"
    return int(found.group(1))


def provisioning_identity_lines() -> str:
    """provisioning/mosquitto-broker.conf's identity lines, verbatim, for tests that
    check the production broker set-up (with TlsFiles(require_certificate=True))."""
    lines = [line.strip() for line in
             PROVISIONING_BROKER_CONF.read_text(encoding="utf-8").splitlines()
             if line.split(None, 1)[:1] and line.split(None, 1)[0] in IDENTITY_DIRECTIVES]
    assert len(lines) == len(IDENTITY_DIRECTIVES), f"identity lines in the broker conf: {lines}"
    return "\n".join(lines)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_mosquitto(folder: Path, port: int | None = None, *, tls: TlsFiles | None = None,
                    extra_config: str = "", anonymous: bool = True) -> MosquittoProcess:
    """Start mosquitto on 127.0.0.1 and return once its port accepts connections.

    anonymous=False with TLS client certificates and an acl_file in extra_config is
    the production setup (provisioning/mosquitto-broker.conf); the default keeps the
    broker open, as an attacker on an unconfigured broker would find it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(_config(folder, port, tls, extra_config, anonymous), encoding="utf-8")
    with open(folder / "stderr.log", "ab") as err:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True,
                                preexec_fn=die_with_parent)
    broker = MosquittoProcess(proc, port, folder)
    _LIVE[proc.pid] = broker
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _accepts(port):
        if not broker.alive():
            err = (folder / "stderr.log").read_text(errors="replace")
            _unregister(broker)
            raise RuntimeError(f"mosquitto exited at start: {err}\n{broker.log()}")
        if time.monotonic() > deadline:
            broker.kill()
            raise RuntimeError(f"mosquitto did not open port {port}:\n{broker.log()}")
        time.sleep(0.05)
    return broker
