"""A device database on a temporary data directory, opened through the product's own
`store.db.connect` (migrations, key check). A test module or conftest takes the
fixtures by importing them; one that needs other settings overrides `config`, and
`conn` follows it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store.db import connect
from appliance.system.config import Config, with_overrides


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(tmp_path)})


@pytest.fixture
def conn(config: Config) -> Iterator[sqlite3.Connection]:
    c = connect(config.paths.database)
    yield c
    c.close()
