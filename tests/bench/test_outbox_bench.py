"""Outbox throughput against raw paho publishing on one real broker (run with -m benchmark)."""

from __future__ import annotations

import pytest

from appliance.bench.outbox import run_bench


@pytest.mark.benchmark
@pytest.mark.timeout(600)
def test_outbox_vs_raw_paho_throughput(tmp_path, broker):
    result = run_bench("127.0.0.1", broker.port, count=500, size=2048, workdir=tmp_path)
    print()
    print(result.summary())
    assert result.raw_msgs_per_s > 0 and result.outbox_records_per_s > 0
