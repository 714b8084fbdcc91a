"""Run inside `unshare --mount --net` (root): the kiosk unit's own command, for real.

Takes the unit's ExecStart= (cage, then Chromium with the kiosk flags) and Environment=,
and runs it as an unprivileged user (cage refuses root; Chromium keeps its own
sandbox) on wlroots' headless backend, since a test machine has no display. Serves the
appliance's origin on 127.0.0.1:8000 with a kiosk page that tries to leave for
127.0.0.1:8001 a second after loading. With the managed policy bind-mounted over
/etc/chromium (unless --no-policy), the other origin must never be asked for anything.
Then Chromium is killed, and cage must end with it (so Restart=always brings the
screen back). Prints one JSON object.

Usage: unshare --mount --net --propagation private python kiosk_cage_probe.py UNIT POLICY
       [--no-policy]
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NOBODY = 65534
# The page says on its own origin (/leaving, answered before it goes) the moment it
# tries to leave, so the probe waits for that attempt instead of a fixed time.
PAGE = (b"<html><body><p>kiosk</p><script>setTimeout(function () {"
        b" fetch('/leaving').finally(function () {"
        b" location.href = 'http://127.0.0.1:8001/escaped'; }); }, 1000);</script>"
        b"</body></html>")
# After the attempt to leave, how long the other origin is watched for a request. The
# control run (--no-policy) measures how long the escape took (escape_seconds), and
# the test holds that well below this.
LEAVE_GRACE_SECONDS = 3.0


def serve(port: int, seen: list[str]) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def unit_command(unit: Path, runtime: Path) -> tuple[list[str], dict[str, str]]:
    text = unit.read_text(encoding="utf-8").replace("\\\n", " ")
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime),
           "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman",
           "WLR_LIBINPUT_NO_DEVICES": "1"}
    argv: list[str] = []
    for line in text.splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value.replace("/run/appliance-kiosk", str(runtime))
        elif line.startswith("ExecStart="):
            argv = shlex.split(line.removeprefix("ExecStart="))
    argv = [a.replace("/run/appliance-kiosk", str(runtime)) for a in argv]
    return argv, env


def install_policy(policy: Path) -> Path:
    fake = Path(tempfile.mkdtemp(prefix="etc-chromium-"))
    subprocess.run(["cp", "-a", "/etc/chromium/.", str(fake)], check=True)
    managed = fake / "policies" / "managed"
    managed.mkdir(parents=True, exist_ok=True)
    (managed / "appliance-kiosk.json").write_bytes(policy.read_bytes())
    subprocess.run(["mount", "--bind", str(fake), "/etc/chromium"], check=True)
    return fake


def main() -> None:
    unit, policy = Path(sys.argv[1]), Path(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    made: list[Path] = []  # /tmp is the host's: removed at the end
    try:
        if "--no-policy" not in sys.argv:
            made.append(install_policy(policy))
        run(unit, made)
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


def run(unit: Path, made: list[Path]) -> None:
    appliance: list[str] = []
    elsewhere: list[str] = []
    serve(8000, appliance)
    serve(8001, elsewhere)
    runtime = Path(tempfile.mkdtemp(prefix="kiosk-run-"))
    made.append(runtime)
    os.chown(runtime, NOBODY, NOBODY)
    os.chmod(runtime, 0o700)
    argv, env = unit_command(unit, runtime)
    env["HOME"] = str(runtime)
    env["TMPDIR"] = str(runtime)  # Chromium's own temporary folders, removed with it

    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    cage = subprocess.Popen(argv, env=env, preexec_fn=drop, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    found: dict[str, object] = {"argv0": argv[0]}
    deadline = time.monotonic() + 60
    while "/leaving" not in appliance and time.monotonic() < deadline and cage.poll() is None:
        time.sleep(0.1)  # the page's attempt to leave comes one second after loading
    leaving = time.monotonic()
    while not elsewhere and time.monotonic() < leaving + LEAVE_GRACE_SECONDS:
        time.sleep(0.05)
    found["escape_seconds"] = round(time.monotonic() - leaving, 2) if elsewhere else None
    found["leave_grace_seconds"] = LEAVE_GRACE_SECONDS
    found["appliance_requests"] = appliance
    found["elsewhere_requests"] = elsewhere
    browsers = subprocess.run(["pgrep", "-u", str(NOBODY), "-x", "chromium"],
                              capture_output=True, text=True).stdout.split()
    found["chromium_processes"] = len(browsers)
    for pid in browsers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    try:
        found["cage_exit_after_browser_killed"] = cage.wait(timeout=20)
    except subprocess.TimeoutExpired:
        found["cage_exit_after_browser_killed"] = None
        os.killpg(cage.pid, signal.SIGKILL)
        cage.wait()
    print(json.dumps(found))


if __name__ == "__main__":
    main()
