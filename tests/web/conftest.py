"""The app on a temporary data directory, one per test, as the Flask tutorial does."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.store.db import connect
from appliance.system.config import Config, with_overrides
from appliance.web import create_app


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return with_overrides(Config(), paths={"data_dir": str(tmp_path / "data")})


@pytest.fixture
def app(config: Config) -> Flask:
    return create_app(config, {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def conn(app: Flask, config: Config) -> Iterator[sqlite3.Connection]:
    c = connect(config.paths.database)
    yield c
    c.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium through Playwright, one per test module; the modules that use
    it skip themselves where Chromium or Playwright is missing."""
    from playwright import sync_api

    from tests.web.test_web_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()

