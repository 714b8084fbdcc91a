"""Shared fixtures: one loaded engine per session (loading verifies every sha256)."""

from __future__ import annotations

import pytest

from appliance.ocr.engine import OcrEngine


@pytest.fixture(scope="session")
def engine() -> OcrEngine:
    return OcrEngine.load()
