"""The technician's scanner jobs: list what SANE finds, and a test scan with timings.

The web never opens the scanner (only this process does), so the technician panel
asks for these as jobs, exactly as the kiosk asks for a scan, and polls the job. They
reuse `appliance scanner test`'s timed steps (`scanner.commands.Steps`): the same step
names and the same message keys on a fault, so what the panel shows matches what the
command prints. Each finished step is written into the job's progress at once, so the
panel shows the steps live; the result (devices, or the identity, capabilities,
pages and a small JPEG thumbnail of the first page, sealed) stays in the progress of
the finished job. Nothing of a test scan is stored as a record; its thumbnail is
sealed like every page at rest (a technician may test with a citizen's paper) and
dropped when the next test scan starts.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

from PIL import Image

from appliance.store import jobs, state
from appliance.store.db import aad, seal_text
from appliance.store.jobs import JobKind
from appliance.store.state import ScannerState
from appliance.worker.context import Tools
from appliance.worker.errors import FailureKey

log = logging.getLogger(__name__)

KINDS = frozenset({JobKind.SCANNER_LIST, JobKind.SCANNER_TEST})
THUMBNAIL_PX = 480  # the longest side; enough to judge skew, colour and cropping
MAX_TEST_PAGES = 20  # a feeder left full is not emptied page by page for a test


def thumbnail_jpeg(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()


def run(tools: Tools, job: jobs.Job) -> None:
    """Run one technician job to done or failed; never raises for the job's failure."""
    from appliance.scanner.commands import Steps  # SANE-side code: worker only
    from appliance.scanner.errors import ScannerError

    result: dict[str, Any] = {}

    def report(_line: str) -> None:
        jobs.set_progress(tools.conn, job.id, steps=steps.done, **result)
        tools.liveness.alive()

    steps = Steps(report)
    if job.kind == JobKind.SCANNER_TEST:
        jobs.forget_test_thumbnails(tools.conn, job.id)
    try:
        if job.kind == JobKind.SCANNER_LIST:
            list_scanners(tools, steps, result)
        else:
            test_scan(tools, job, steps, result)
    except ScannerError as e:
        jobs.set_progress(tools.conn, job.id, steps=steps.done, **result)
        log.warning("technician job %s (%s) failed (%s): %s", job.id, job.kind, e.key, e)
        jobs.fail(tools.conn, job.id, e.key, str(e))
        return
    except Exception as e:  # noqa: BLE001 - a test must never take the worker down
        jobs.set_progress(tools.conn, job.id, steps=steps.done, **result)
        log.error("technician job %s (%s) failed: %s", job.id, job.kind, e, exc_info=e)
        jobs.fail(tools.conn, job.id, FailureKey.GENERIC, str(e))
        return
    jobs.set_progress(tools.conn, job.id, steps=steps.done, **result)
    jobs.finish(tools.conn, job.id)
    log.info("technician job %s (%s) done", job.id, job.kind)


def list_scanners(tools: Tools, steps: Any, result: dict[str, Any]) -> None:
    """SANE re-initialised (a replugged USB scanner shows up), then every device with
    the identity the appliance would remember, the chosen one marked."""
    from appliance.scanner import device
    from appliance.scanner.errors import ScannerError
    from appliance.scanner.identity import ScannerIdentity

    chosen = state.chosen_scanner(tools.conn)
    wanted = chosen or tools.config.scanner.device
    with steps.step("start SANE"):
        device.reload_sane()
    with steps.step("list devices") as rec:
        found = device.list_devices()
        rec["found"] = len(found)
    in_use: str | None = None
    if found:
        try:
            in_use = device.resolve_device(wanted, found).name
        except ScannerError as e:  # the chosen one is absent: none is marked
            log.info("scanner in use %r not listed: %s", wanted, e)
    picked: str | None = None  # the device the technician's choice names, if listed
    if chosen and ScannerIdentity.looks_like(chosen):
        identity = ScannerIdentity.from_string(chosen)
        result["chosen_label"] = _label(identity)
        match = identity.find(found)
        picked = match.name if match is not None else None
    result["devices"] = [
        {"name": d.name, "backend": d.backend, "vendor": d.vendor, "model": d.model,
         "type": d.type, "serial": d.serial, "identity": d.identity.to_string(),
         "in_use": d.name == in_use, "chosen": d.name == picked}
        for d in found]
    result["chosen"] = chosen


def _label(identity: Any) -> str:
    return " ".join(p for p in (identity.vendor, identity.model) if p) + (
        f" ({identity.serial})" if identity.serial else "")


def test_scan(tools: Tools, job: jobs.Job, steps: Any, result: dict[str, Any]) -> None:
    """Open (the asked device, else the chosen, else the configured), read the
    capabilities, scan one batch, close: each step timed, the first page kept as a
    thumbnail. The scanner's state is shown busy meanwhile and put right after."""
    from appliance.scanner import device
    from appliance.scanner.errors import ScannerCancelled, ScannerError

    sc = tools.config.scanner
    in_use = state.chosen_scanner(tools.conn) or sc.device
    wanted = str(job.params.get("device") or "") or in_use
    source = str(job.params.get("source") or "flatbed")
    fault: ScannerError | None = None
    state.set_scanner(tools.conn, ScannerState.BUSY)
    try:
        with steps.step("open", wanted=wanted or "(first listed)") as rec:
            scanner = device.open_scanner(wanted, sc.resolution, sc.mode)
            rec.update(name=scanner.info.name, backend=scanner.info.backend)
        with scanner:
            with steps.step("capabilities") as rec:
                caps = scanner.capabilities()
                result["identity"] = scanner.identity.to_string()
                result["name"] = scanner.info.name
                result["label"] = _label(scanner.identity)
                result["capabilities"] = caps.to_dict()
                rec.update(sources=list(caps.sources))
            if not job.params.get("device") or wanted == in_use:
                # the kiosk's own scanner: what it can do is what the kiosk offers
                state.set_scanner_capabilities(tools.conn, caps.to_dict())
            batch = scanner.scan(source)
            pages = 0
            while pages < MAX_TEST_PAGES:
                page = steps.page(batch, pages + 1)
                if page is None:
                    break
                pages += 1
                if pages == 1:
                    with steps.step("thumbnail") as rec:
                        jpeg = thumbnail_jpeg(page)
                        # sealed like every page at rest: the paper may be a citizen's
                        result[jobs.TEST_THUMBNAIL] = seal_text(
                            tools.conn, base64.b64encode(jpeg).decode("ascii"),
                            aad("jobs", jobs.TEST_THUMBNAIL, job.id))
                        rec["bytes"] = len(jpeg)
            batch.close()
            result["pages"] = pages
            with steps.step("close"):
                scanner.close()
    except ScannerError as e:
        fault = e
        raise
    finally:
        used = not job.params.get("device") or wanted == in_use
        if fault is None or isinstance(fault, ScannerCancelled) or not used:
            state.set_scanner(tools.conn, ScannerState.READY)
        else:  # the kiosk's own scanner is at fault: the kiosk must know too
            state.set_scanner(tools.conn, ScannerState.ERROR, fault.key)
