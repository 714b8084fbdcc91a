"""What the kiosk screens and the JSON API both *do*, written once.

The kiosk posts forms and the API takes JSON, but opening a dossier, asking for a
scan, submitting, cancelling and signing must follow the same rules on both. Each
function raises a `WebError` (or the records/store error as it comes) and lets the
blueprint's one error handler answer.

Flood limits live here too, because they are part of what "open a dossier" means:
one open dossier per kiosk session (a second tap on the same procedure keeps the
first), a creation rate per client, a cap of open dossiers per client and in total,
and abandoned dossiers (their session long gone) cancelled to make room, so anonymous
requests cannot use up the day's dossier codes and a flood degrades only the flooder.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from typing import Any

from flask import current_app

from appliance.records import consent, dossiers, procedures, queries
from appliance.records.dossiers import Dossier
from appliance.records.errors import RecordsError
from appliance.status import disk_below_scan_floor
from appliance.store import jobs, state
from appliance.store.db import get_state, transaction
from appliance.system.config import Config
from appliance.system.text import one_line
from appliance.web.db import get_config
from appliance.web.errors import WebError
from appliance.web.i18n import LANGUAGES
from appliance.web.limits import Leases, TokenBucket, retry_after

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("flatbed", "adf")
# The one-tap presets by name (appliance.scanner.settings.PRESETS: the web never imports
# the scanner, so a test keeps these names equal to its), each with the source its
# paper goes through as the web names it (both sides of a sheet go through the feeder).
PRESET_SOURCES: dict[str, str] = {
    "a4_form": "flatbed", "cccd": "flatbed", "feeder_batch": "adf", "duplex": "adf",
}
DEFAULT_PRESET = "a4_form"
# Until the worker publishes the opened scanner's capabilities, a citizen is offered
# the glass presets every scanner has; staff also get the feeder ones. Once it has,
# `offered_presets` narrows these to what the device honours.
KIOSK_PRESETS: tuple[str, ...] = ("a4_form", "cccd")
STAFF_PRESETS: tuple[str, ...] = ("a4_form", "cccd", "feeder_batch", "duplex")
# The key a job stopped from the screen fails with (ScannerCancelled's, as the worker
# gives it when it stops at a page boundary): a notice, not a fault.
SCAN_CANCELLED = "scanner.cancelled"
# The worker beats every loop (~0.3 s idle) but not while a long page is being read;
# OCR of one page can take 15 s+ on a Pi, so only a much longer silence is a fault.
WORKER_STALE_SECONDS = 60.0
MAX_OFFICER_NAME = 120

LIMITS = "appliance.limits"
DEFAULTS: dict[str, Any] = {
    "CREATE_BURST": 5, "CREATE_EVERY_SECONDS": 60.0,  # dossiers opened per client
    "SCAN_BURST": 10, "SCAN_EVERY_SECONDS": 5.0,  # scans asked for per client
    "MAX_OPEN_PER_CLIENT": 3, "MAX_OPEN_DOSSIERS": 40,
    "DOSSIER_LEASE_SECONDS": None,  # None: max(15 min, 3 x the kiosk's idle reset)
}


class Limits:
    def __init__(self, settings: dict[str, Any], idle_reset_seconds: int) -> None:
        self.create = TokenBucket(settings["CREATE_BURST"], settings["CREATE_EVERY_SECONDS"])
        self.scan = TokenBucket(settings["SCAN_BURST"], settings["SCAN_EVERY_SECONDS"])
        self.max_per_client = int(settings["MAX_OPEN_PER_CLIENT"])
        self.max_open = int(settings["MAX_OPEN_DOSSIERS"])
        lease = settings["DOSSIER_LEASE_SECONDS"]
        self.lease_seconds = float(lease if lease is not None
                                   else max(15 * 60, 3 * idle_reset_seconds))
        self.leases = Leases()


def init_app(app: Any, config: Config) -> None:
    settings = {k: app.config.get(k, v) for k, v in DEFAULTS.items()}
    app.extensions[LIMITS] = Limits(settings, config.web.idle_reset_seconds)


def limits() -> Limits:
    return current_app.extensions[LIMITS]


def _spend(bucket: TokenBucket, client: str) -> None:
    wait = bucket.take(client)
    if wait > 0:
        raise WebError("error.rate_limited", 429, "rate limited", retry_after(wait))


def spend_scan(client: str) -> None:
    """Take one of `client`'s scan tokens now (429 when none is left): for a use that
    must know the scan will be allowed before it changes anything (a retake takes the
    page out first), then queues it through `start_scan` with no client."""
    _spend(limits().scan, client)


def worker_stalled(conn: sqlite3.Connection, at: float | None = None) -> bool:
    """True when the worker has published a heartbeat but not recently.

    A queued scan then waits for nobody, and the citizen should be told to ask for
    help instead of watching a spinner. No heartbeat at all means "not known yet"
    (first start), which is not reported as a fault.
    """
    found = get_state(conn, "worker.heartbeat")
    if found is None:
        return False
    try:
        beat = float(found[0])
    except ValueError:
        return False
    return (time.time() if at is None else at) - beat > WORKER_STALE_SECONDS


def abandon(conn: sqlite3.Connection, dossier_id: int | None) -> None:
    """Cancel an open dossier nobody will finish, unless the worker is still on it."""
    if dossier_id is None:
        return
    with contextlib.suppress(RecordsError):  # gone, or someone else finished it
        d = dossiers.get(conn, dossier_id)
        if d.status == "open" and jobs.active_for_dossier(conn, d.id) is None:
            dossiers.cancel(conn, d.id)


def _make_room(conn: sqlite3.Connection, client: str) -> None:
    """Refuse a new dossier over the caps, after cancelling abandoned ones."""
    lim = limits()
    now = time.time()
    opened = queries.open_dossiers(conn)
    lim.leases.forget({o.id for o in opened})

    def stale(o: queries.OpenDossier) -> bool:
        return not o.active_job and now - lim.leases.seen(o.id, o.created_at) > lim.lease_seconds

    def expire(victims: list[queries.OpenDossier]) -> None:
        for o in victims:
            log.info("dossier %d: abandoned (no session for %.0f s), cancelled to make room",
                     o.id, lim.lease_seconds)
            abandon(conn, o.id)

    mine = [o for o in opened if lim.leases.client(o.id) == client]
    if len(mine) >= lim.max_per_client:
        expire([o for o in mine if stale(o)])
        mine = [o for o in mine if not stale(o)]
        if len(mine) >= lim.max_per_client:
            wait = min(lim.leases.seen(o.id, o.created_at) for o in mine) + lim.lease_seconds
            raise WebError("error.too_many_open", 429, "open dossiers per client",
                           retry_after(wait - now))
    if len(opened) >= lim.max_open:
        expire([o for o in opened if stale(o)])
        left = [o for o in opened if not stale(o)]
        if len(left) >= lim.max_open:
            raise WebError("error.too_many_open", 503, "open dossiers in total",
                           retry_after(lim.lease_seconds / 10))


def end_session(conn: sqlite3.Connection, dossier_id: int | None) -> None:
    """The citizen has left (idle reset, cancel, a new procedure): their open dossier
    is cancelled where an officer can see it, and a scan they queued never runs."""
    if dossier_id is None:
        return
    if consent.end_session(conn, dossier_id):
        log.info("dossier %d: session ended during a running scan; cancelled", dossier_id)


def unfinished(conn: sqlite3.Connection, dossier_id: int | None) -> Dossier | None:
    """The session's open dossier when leaving it would lose something (pages, a scan)."""
    if dossier_id is None:
        return None
    try:
        d = dossiers.get(conn, dossier_id)
    except RecordsError:
        return None
    if d.status != "open":
        return None
    if d.papers or jobs.active_for_dossier(conn, d.id) is not None:
        return d
    return None


def open_dossier(conn: sqlite3.Connection, config: Config, procedure: Any, language: Any,
                 client: str, current: int | None) -> Dossier:
    """Open a dossier for a citizen whose session holds `current` (or nothing).

    The same procedure tapped again while the session's dossier is still empty keeps
    that dossier (and its code); anything else ends the old one first (cancelled, its
    queued scan withdrawn), so no dossier is left open on no screen. The kiosk asks the
    citizen before it gets here with a dossier that has pages.
    """
    if not isinstance(procedure, str) or procedures.find(procedure) is None:
        raise WebError("error.unknown_procedure", 400)
    if language not in LANGUAGES:
        raise WebError("error.bad_language", 400)
    if current is not None:
        with contextlib.suppress(RecordsError):
            d = dossiers.get(conn, current)
            if (d.status == "open" and d.procedure_code == procedure
                    and d.language == language and not d.papers
                    and jobs.active_for_dossier(conn, d.id) is None):
                limits().leases.bind(d.id, client)
                return d
        running = jobs.active_for_dossier(conn, current)
        if running is not None and running.state == "running":
            raise WebError("error.job_active", 409)
        end_session(conn, current)
    _spend(limits().create, client)
    _make_room(conn, client)
    dossier_id = dossiers.create(conn, config, procedure, language)
    limits().leases.bind(dossier_id, client)
    return dossiers.get(conn, dossier_id)


def touch(dossier_id: int) -> None:
    """The citizen's session is alive: its dossier is not abandoned."""
    limits().leases.touch(dossier_id)


def _next_title(dossier: Dossier) -> str:
    """Name a new paper after the procedure's list, so the officer knows what it is.

    Titles are Vietnamese whatever the screen language: they go into the record.
    """
    proc = procedures.find(dossier.procedure_code)
    expected = proc.papers if proc else ()
    n = len(dossier.papers)
    if n < len(expected):
        return expected[n][0]
    return f"Giấy tờ số {n + 1}"


def offered_presets(conn: sqlite3.Connection, *, staff: bool) -> tuple[str, ...]:
    """The presets to offer (and accept): the kiosk's or the staff's, keeping only those
    the scanner the worker last opened can honour (a feeder preset on a flatbed-only
    device, duplex on a simplex feeder, would only fail). The fixed lists while no
    capabilities are known (before the first scan, or from an older worker)."""
    base = STAFF_PRESETS if staff else KIOSK_PRESETS
    caps = state.scanner_capabilities(conn)
    supported = caps.get("presets") if caps is not None else None
    if not isinstance(supported, list):
        return base
    return tuple(name for name in base if name in supported)


def offered_sources(conn: sqlite3.Connection) -> tuple[str, ...]:
    """The sources the kiosk's scan buttons offer: the glass, and the feeder only when
    the scanner the worker last opened has one (both while nothing is known)."""
    caps = state.scanner_capabilities(conn)
    found = caps.get("sources") if caps is not None else None
    if not isinstance(found, list):
        return SOURCES
    return tuple(s for s in SOURCES if s in found) or SOURCES


def check_preset(preset: Any, source: Any,
                 allowed: tuple[str, ...] = KIOSK_PRESETS) -> tuple[str | None, Any]:
    """(preset, source) for a scan: a preset must be one `allowed` here, and names its
    own source when none is given; a source that contradicts it is refused."""
    if preset is None or preset == "":
        return None, source
    if not isinstance(preset, str) or preset not in allowed or preset not in PRESET_SOURCES:
        raise WebError("error.bad_preset", 400)
    wanted = PRESET_SOURCES[preset]
    if source is None or source == "":
        return preset, wanted
    if source != wanted:
        raise WebError("error.bad_preset", 400)
    return preset, source


def start_scan(conn: sqlite3.Connection, dossier_id: int, source: Any,
               paper_id: Any = None, client: str | None = None,
               title: str | None = None, preset: Any = None,
               presets: tuple[str, ...] = KIOSK_PRESETS,
               after_ordinal: int | None = None) -> int:
    """Queue a scan for the worker; refuse a second one while one is queued or running.

    The check and the insert share one write transaction so two quick taps (or two
    clients) cannot queue two scans of the same feeder. `title` names the paper the
    citizen said is on the glass; without it the procedure's next paper is assumed.
    A worker that has gone silent is reported at once: a queued scan would only wait.
    `preset` (one of `presets`) goes into the job's params for the worker.
    `after_ordinal` (with `paper_id`): the new image(s) go right after that page of
    the paper (0: first), as an extra image of it (handwritten notes) or in the place
    of a page retaken, not at the paper's end.
    """
    preset, source = check_preset(preset, source, presets)
    if source not in offered_sources(conn):  # not one the scanner has: it would only fail
        raise WebError("error.bad_source", 400)
    if disk_below_scan_floor(get_config()):
        raise WebError("error.disk_full", 507)
    if paper_id is not None and (isinstance(paper_id, bool) or not isinstance(paper_id, int)):
        raise WebError("error.bad_paper", 400)
    if worker_stalled(conn):
        raise WebError("error.worker_down", 503)
    if client is not None:
        _spend(limits().scan, client)
    with transaction(conn):
        dossier = dossiers.get(conn, dossier_id)
        if dossier.status != "open":
            raise WebError("error.invalid_state", 409)
        if jobs.active_for_dossier(conn, dossier_id) is not None:
            raise WebError("error.job_active", 409)
        params: dict[str, Any] = {"source": source}
        if preset is not None:
            params["preset"] = preset
        if paper_id is not None:
            paper = next((p for p in dossier.papers if p.id == paper_id), None)
            if paper is None:
                raise WebError("error.bad_paper", 400)
            params.update(paper_id=paper_id, title=paper.title)
            if after_ordinal is not None:
                params["after_ordinal"] = int(after_ordinal)
        else:
            params["title"] = title or _next_title(dossier)
        return jobs.enqueue(conn, "scan", dossier_id, params)


def stop_scan(conn: sqlite3.Connection, dossier_id: int, job_id: Any = None) -> bool:
    """Stop the dossier's queued or running scan from the screen: a queued one fails at
    once, a running one stops at the next page boundary; the pages so far are kept and
    the job ends failed with `SCAN_CANCELLED`. Only a job of `dossier_id` is touched:
    `job_id`, when given (the screen's), must be that dossier's active job. False when
    there was nothing left to stop (it had just ended)."""
    job = jobs.active_for_dossier(conn, dossier_id)
    if job is None:
        return False
    if job_id is not None and job_id != job.id:
        raise WebError("error.stale_screen", 409)
    stopped = jobs.request_cancel(conn, job.id, SCAN_CANCELLED)
    if stopped:
        log.info("dossier %d: scan job %d asked to stop", dossier_id, job.id)
    return stopped


def stopping(job: jobs.Job | None) -> bool:
    """Whether a running job has been asked to stop (it ends at the next page)."""
    return bool(job is not None and job.state == jobs.JobState.RUNNING
                and job.params.get("cancel"))


def submit(conn: sqlite3.Connection, dossier_id: int) -> Dossier:
    if jobs.active_for_dossier(conn, dossier_id) is not None:
        raise WebError("error.job_active", 409)
    dossiers.submit(conn, dossier_id)
    return dossiers.get(conn, dossier_id)


def cancel(conn: sqlite3.Connection, dossier_id: int, *, officer: bool) -> Dossier:
    """Cancel a dossier. A citizen may cancel only while it is open: once submitted,
    its owner holds a receipt, and only an officer may take it off the list."""
    d = dossiers.get(conn, dossier_id)
    if d.status != "open" and not officer:
        raise WebError("error.invalid_state", 409)
    if jobs.active_for_dossier(conn, dossier_id) is not None:
        raise WebError("error.job_active", 409)
    dossiers.cancel(conn, dossier_id)
    return dossiers.get(conn, dossier_id)


def officer_name(raw: Any, default: str | None = None) -> str:
    """The signer's name as typed; `default` stands in for an empty field where the
    officer is already identified (the PIN session), so no typing is needed."""
    typed = one_line(raw) if isinstance(raw, str) else ""
    if typed:
        return typed[:MAX_OFFICER_NAME]
    if default:
        return default[:MAX_OFFICER_NAME]
    raise WebError("error.officer_required", 400)


def clean_text(raw: str) -> str:
    """A one-line note as typed (a correction's reason): NFC, without control
    characters or lone surrogates, runs of spaces made one, as a name is kept."""
    return one_line(raw)


def sign(conn: sqlite3.Connection, config: Config, dossier_id: int, officer: Any) -> str:
    return dossiers.sign_off(conn, config, dossier_id, officer_name(officer))


def latest_job(conn: sqlite3.Connection, dossier_id: int) -> jobs.Job:
    dossiers.get(conn, dossier_id)
    job = queries.latest_job(conn, dossier_id)
    if job is None:
        raise WebError("error.job_not_found", 404)
    return job


def get_job(conn: sqlite3.Connection, job_id: int) -> jobs.Job:
    job = jobs.get(conn, job_id)
    if job is None:
        raise WebError("error.job_not_found", 404)
    return job
