"""Fleet mode of the outbox bench: many devices, each with its own identity and outbox,
draining at once into one broker and three receivers sharing the subscription.

The small run is part of the default suite (every record once, none lost, none
delivered falsely); the 200-device run is a benchmark (-m benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.bench.fleet import run_fleet
from tests.helpers import postgres as pg_helpers

pg_server = pg_helpers.pg_server  # fixture
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_ten_devices_three_receivers_every_record_once(tmp_path):
    result = run_fleet(devices=10, records_per_device=8, file_bytes=2048, workdir=tmp_path)
    print(result.summary())
    assert result.records == 80
    assert (result.duplicates, result.lost, result.false_delivered) == (0, 0, 0)
    assert result.records_per_s > 0


@pytest.mark.timeout(240)
def test_the_cli_prints_json_and_fails_on_nothing(tmp_path):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "appliance"), "bench", "fleet", "--json",
         "--devices", "3",
         "--records-per-device", "4", "--file-bytes", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=220)
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["records"] == 12 and figures["duplicates"] == 0 and figures["lost"] == 0
    assert figures["records_per_s"] > 0


@pytest.mark.benchmark
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_two_hundred_devices(engine, tmp_path, request):
    dsn = (request.getfixturevalue("pg_server").create_database()
           if engine == "postgresql" else "")
    result = run_fleet(devices=200, records_per_device=10, postgres_dsn=dsn,
                       workdir=tmp_path)
    print()
    print(json.dumps(result.as_dict()))
    assert (result.duplicates, result.lost, result.false_delivered) == (0, 0, 0)
