"""A real CUPS scheduler for tests, in a temporary folder, stopped by PID.

Debian's cupsd runs with its own cupsd.conf and cups-files.conf (ServerRoot, spool,
cache and state all in the folder) and listens only on a Unix socket there, so it
neither needs nor touches /etc/cups or the machine's printers. Clients reach it
through CUPS_SERVER=<folder>/cups.sock, the same `lp` the appliance runs. The one
queue's device is a small CUPS backend (`capture:<dir>`) that writes each job's
document to <dir>/job-<id>.out exactly as cupsd hands it to a printer: what a
printer would have received, with no printer.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.system.process import die_with_parent

CUPSD = Path("/usr/sbin/cupsd")
LPADMIN = Path("/usr/sbin/lpadmin")
SYSTEM_SERVERBIN = Path("/usr/lib/cups")
CAPTURE_BACKEND = """#!/bin/sh
# capture:DIR - each job's document to DIR/job-<id>.out (argv: job user title copies
# options [file]; without a file the document comes on stdin)
if [ $# -eq 0 ]; then echo 'direct capture "Unknown" "Capture to a folder"'; exit 0; fi
dir="${DEVICE_URI#capture:}"
if [ -n "$6" ]; then cat "$6" > "$dir/job-$1.out.part"; else cat > "$dir/job-$1.out.part"; fi
mv "$dir/job-$1.out.part" "$dir/job-$1.out"
"""


@dataclass
class Cups:
    folder: Path
    proc: subprocess.Popen[bytes]
    queue: str
    out: Path

    @property
    def socket(self) -> Path:
        return self.folder / "cups.sock"

    @property
    def env(self) -> dict[str, str]:
        return {"CUPS_SERVER": str(self.socket)}

    def jobs(self) -> list[Path]:
        return sorted(self.out.glob("job-*.out"))

    def log(self) -> str:
        try:
            return (self.folder / "log" / "error_log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        _LIVE.pop(self.proc.pid, None)
        shutil.rmtree(self.folder, ignore_errors=True)


_LIVE: dict[int, Cups] = {}
atexit.register(lambda: [c.stop() for c in list(_LIVE.values())])


def start_cups(queue: str = "receipt") -> Cups:
    """cupsd on <folder>/cups.sock with one queue, `queue`, capturing to <folder>/out.

    The folder is made right under /tmp, readable by all: the backend and the filters
    run as cupsd's unprivileged user (lp), which cannot enter pytest's 0700 folders.
    """
    folder = Path(tempfile.mkdtemp(prefix="cups-"))
    folder.chmod(0o755)
    for sub in ("spool/tmp", "cache", "state", "log", "ppd", "bin/backend"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    out = folder / "out"
    out.mkdir()
    out.chmod(0o1777)  # written by the backend, as lp
    for part in ("filter", "daemon", "cgi-bin", "notifier", "monitor", "driver"):
        if (SYSTEM_SERVERBIN / part).exists() and not (folder / "bin" / part).exists():
            (folder / "bin" / part).symlink_to(SYSTEM_SERVERBIN / part)
    backend = folder / "bin" / "backend" / "capture"
    backend.write_text(CAPTURE_BACKEND, encoding="utf-8")
    backend.chmod(0o755)
    (folder / "cupsd.conf").write_text(
        f"Listen {folder / 'cups.sock'}\nLogLevel info\nWebInterface No\n"
        "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        "<Location /admin>\n  Order allow,deny\n  Allow all\n</Location>\n", encoding="utf-8")
    (folder / "cups-files.conf").write_text(
        f"ServerRoot {folder}\nRequestRoot {folder / 'spool'}\n"
        f"TempDir {folder / 'spool' / 'tmp'}\nCacheDir {folder / 'cache'}\n"
        f"StateDir {folder / 'state'}\nServerBin {folder / 'bin'}\n"
        "DataDir /usr/share/cups\n"
        f"ErrorLog {folder / 'log' / 'error_log'}\nAccessLog {folder / 'log' / 'access_log'}\n"
        f"PageLog {folder / 'log' / 'page_log'}\nPrintcap {folder / 'printcap'}\n"
        "SystemGroup root\n", encoding="utf-8")
    proc = subprocess.Popen([str(CUPSD), "-f", "-c", str(folder / "cupsd.conf"),
                             "-s", str(folder / "cups-files.conf")], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=die_with_parent)
    cups = Cups(folder, proc, queue, out)
    _LIVE[proc.pid] = cups
    env = {**os.environ, **cups.env}
    deadline = time.monotonic() + 15
    while not cups.socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            cups.stop()
            raise RuntimeError(f"cupsd did not start:\n{cups.log()}")
        time.sleep(0.05)
    # A raw queue: the receipt PDF goes to the device as it is (printers that take PDF
    # directly; a real device gets its driver's PPD at provisioning).
    done = subprocess.run([str(LPADMIN), "-p", queue, "-E", "-v", f"capture:{out}",
                           "-m", "raw"], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        cups.stop()
        raise RuntimeError(f"lpadmin failed: {done.stderr}\n{cups.log()}")
    return cups
