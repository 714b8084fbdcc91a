"""The worker publishes what the scanner it opened can do, and the web offers only
those presets: a real worker process scans from the eSCL emulator through
sane-airscan with a duplex feeder, a simplex-only feeder, and no feeder at all."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.records import dossiers
from appliance.store import jobs, state
from appliance.store.db import connect, set_state
from appliance.system import config as config_mod
from appliance.web import create_app, usecases
from appliance.web.errors import WebError
from tests.helpers.processes import Processes, demo_scanner_sane, free_port, wait_for
from tests.web.forms import AGREE, post_form

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[config_mod.Config, Processes, int]]:
    port = free_port()
    config = config_mod.with_overrides(
        config_mod.Config(), paths={"data_dir": str(tmp_path / "data")},
        scanner={"sane_config_dir": demo_scanner_sane(tmp_path, port)}, ocr={"enabled": False})
    procs = Processes.for_config(tmp_path, config)
    connect(config.paths.database).close()
    try:
        yield config, procs, port
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()


def _offered(config: config_mod.Config, conn) -> tuple[tuple[str, ...], tuple[str, ...]]:
    app = create_app(config, {"TESTING": True})
    with app.app_context():
        return (usecases.offered_presets(conn, staff=False),
                usecases.offered_presets(conn, staff=True))


# emulator options, the sources the device must report, the staff presets offered
KINDS = {
    "duplex": ((), {"flatbed", "adf", "duplex"},
               ("a4_form", "cccd", "feeder_batch", "duplex")),
    "simplex": (("--no-duplex",), {"flatbed", "adf"}, ("a4_form", "cccd", "feeder_batch")),
    "flatbed_only": (("--no-feeder",), {"flatbed"}, ("a4_form", "cccd")),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_presets_follow_the_opened_scanner(setup, kind: str):
    options, sources, offered_to_staff = KINDS[kind]
    config, procs, port = setup
    conn = connect(config.paths.database)
    # nothing known yet: the fixed lists
    assert _offered(config, conn) == (usecases.KIOSK_PRESETS, usecases.STAFF_PRESETS)

    procs.start("scanner", "demo-scanner", "--port", str(port), "--adf-pages", "2", *options)
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 30,
             "the demo scanner")
    procs.start("worker", "worker")
    dossier_id = dossiers.create(conn, config, "tk1-ts")
    job_id = jobs.enqueue(conn, "scan", dossier_id, {"source": "flatbed", "title": "Tờ khai"})
    job = wait_for(lambda: (j := jobs.get(conn, job_id)) and j.state in (
        jobs.JobState.DONE, jobs.JobState.FAILED) and j, 180, "the scan")
    assert job.state == jobs.JobState.DONE, job

    caps = state.scanner_capabilities(conn)
    assert caps is not None
    assert set(caps["sources"]) == sources
    assert caps["resolutions"] and max(caps["resolutions"]) >= 300
    assert caps["max_area_mm"][0] >= 210 and caps["max_area_mm"][1] >= 296.5
    kiosk, staff = _offered(config, conn)
    assert kiosk == ("a4_form", "cccd")
    assert staff == offered_to_staff

    app = create_app(config, {"TESTING": True})
    with app.test_request_context():
        other = dossiers.create(conn, config, "tk1-ts")
        for name in ("feeder_batch", "duplex"):
            if name in offered_to_staff:
                continue
            # never offered, and refused if asked for anyway
            with pytest.raises(WebError) as refused:
                usecases.start_scan(conn, other, None, preset=name, presets=staff)
            assert refused.value.key == "error.bad_preset"
        if "adf" not in sources:  # the feeder is not offered, and refused if asked for
            with pytest.raises(WebError) as refused:
                usecases.start_scan(conn, other, "adf")
            assert refused.value.key == "error.bad_source"
        assert usecases.start_scan(conn, other, None, preset=offered_to_staff[-1],
                                   presets=staff)
    # the kiosk's feeder button is there only when the scanner has a feeder
    client = app.test_client()
    post_form(client, "/kiosk/dossiers", {"procedure": "tk1-ts", **AGREE},
              page="/kiosk/consent?procedure=tk1-ts")
    page = client.get("/kiosk/dossier").get_data(as_text=True)
    assert 'id="scan-flatbed"' in page
    assert ('id="scan-adf"' in page) is ("adf" in sources)
    conn.close()


def test_unusable_capabilities_fall_back_to_the_fixed_presets(tmp_path: Path):
    config = config_mod.with_overrides(config_mod.Config(),
                                       paths={"data_dir": str(tmp_path / "data")})
    conn = connect(config.paths.database)
    set_state(conn, state.StateKey.SCANNER_CAPABILITIES, "{not json")
    assert _offered(config, conn) == (usecases.KIOSK_PRESETS, usecases.STAFF_PRESETS)
    state.set_scanner_capabilities(conn, {"sources": ["flatbed"], "presets": ["a4_form"]})
    assert _offered(config, conn) == (("a4_form",), ("a4_form",))
    conn.close()
