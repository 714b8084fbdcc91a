"""Printing through CUPS: one command, run without a shell, bounded in time.

Why the server prints: the kiosk browser's policy sets PrintingEnabled=false, so no
print dialog can ever open over the kiosk (a citizen could otherwise reach the
file system or other printers through it). The web service prints the receipt
itself with `lp -d <queue>` (printer.command), which talks to the local cupsd over
its socket; the Print button is only shown while printer.queue is set.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path

from appliance.system.config import PrinterConfig
from appliance.system.errors import PrinterFailed, PrinterMissing, PrinterTimeout

log = logging.getLogger(__name__)


def command(cfg: PrinterConfig, file: Path, title: str) -> list[str]:
    """The configured command as argv, each word formatted on its own (a title with
    spaces stays one argument, and nothing is ever read by a shell)."""
    values = {"queue": cfg.queue, "file": str(file), "title": title}
    return [word.format(**values) for word in shlex.split(cfg.command)]


def print_file(cfg: PrinterConfig, file: Path, title: str) -> str:
    """Hand `file` to the printer; returns what the command said (lp: "request id is
    <queue>-<n>"). Raises a PrinterError with the key the kiosk translates."""
    argv = command(cfg, file, title)
    try:
        done = subprocess.run(argv, capture_output=True, text=True,
                              timeout=cfg.timeout_seconds, check=False)
    except FileNotFoundError as e:
        raise PrinterMissing(f"print command not found: {argv[0]}") from e
    except subprocess.TimeoutExpired as e:
        raise PrinterTimeout(f"{argv[0]} took more than {cfg.timeout_seconds} s") from e
    except OSError as e:
        raise PrinterFailed(f"{argv[0]}: {e}") from e
    if done.returncode != 0:
        raise PrinterFailed(f"{argv[0]} exited {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()[:300]}")
    answer = done.stdout.strip()
    log.info("receipt sent to printer %s: %s", cfg.queue, answer or "(no answer)")
    return answer
