"""A real PostgreSQL from Debian's package for tests, in a temporary folder, stopped by PID.

Usage (pytest fixtures below):
    def test_x(pg_dsn): ...          # a fresh, empty database on a session-wide server

The server is the Debian cluster binaries (/usr/lib/postgresql/<version>/bin) run
directly: initdb into a temporary folder, postgres listening only on a unix socket in
that folder (no TCP port to collide with), trust authentication for the one role. As
root, PostgreSQL refuses to run, so initdb and postgres run as `nobody` (setpriv) in a
folder of their own under /tmp (pytest's tmp_path is root-only). Stopped with SIGINT
(fast shutdown), then SIGKILL, by PID, whatever happens to the tests.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_SECONDS = 60.0
ROLE = "central"
PORT = 5432  # only names the socket file: there is no TCP listener


def pg_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries installed, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


class PostgresServer:
    """One postgres process on a unix socket in its own temporary folder."""

    def __init__(self, folder: Path, proc: subprocess.Popen[bytes]) -> None:
        self.folder = folder
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def socket_dir(self) -> Path:
        return self.folder / "sock"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{ROLE}@/{database}?host={self.socket_dir}&port={PORT}"

    def log(self) -> str:
        try:
            return (self.folder / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def create_database(self) -> str:
        """A fresh empty database on this server; its DSN."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        _LIVE.pop(self.pid, None)
        shutil.rmtree(self.folder, ignore_errors=True)


_LIVE: dict[int, PostgresServer] = {}


def _stop_leftovers() -> None:
    for server in list(_LIVE.values()):
        server.stop()


atexit.register(_stop_leftovers)


def start_postgres(fsync: bool = True) -> PostgresServer:
    """initdb + postgres in a new folder under /tmp; returns once it accepts connections."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="central-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        for path in (folder, sock):
            os.chown(path, 65534, 65534)
    user = _as_server_user()
    init = subprocess.run(
        [*user, str(bindir / "initdb"), "-D", str(data), "-U", ROLE, "--auth=trust",
         "--encoding=UTF8", "--locale=C", "--no-sync"],
        capture_output=True, cwd=folder, timeout=120)
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')}")
    log = open(folder / "postgres.log", "ab")  # noqa: SIM115 - the server writes it
    try:
        proc = subprocess.Popen(
            [*user, str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p", str(PORT),
             "-c", "listen_addresses=", "-c", f"fsync={'on' if fsync else 'off'}",
             "-c", "max_connections=300", "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    finally:
        log.close()
    server = PostgresServer(folder, proc)
    _LIVE[proc.pid] = server
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _accepts(server):
        if not server.alive():
            text = server.log()
            server.stop()
            raise RuntimeError(f"postgres exited at start:\n{text}")
        if time.monotonic() > deadline:
            text = server.log()
            server.stop()
            raise RuntimeError(f"postgres did not accept connections:\n{text}")
        time.sleep(0.1)
    return server


def _accepts(server: PostgresServer) -> bool:
    import psycopg

    try:
        with psycopg.connect(server.dsn(), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return pg_bin() is not None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One server for the session (initdb takes seconds); each test gets its own database."""
    if not available():
        pytest.fail("PostgreSQL tests need the Debian package postgresql and psycopg "
                    "(bash provisioning/install.sh test installs both)")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> str:
    return pg_server.create_database()


__all__ = ["PostgresServer", "available", "pg_bin", "pg_dsn", "pg_server", "start_postgres"]
