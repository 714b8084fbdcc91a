"""The layering of the README's "How the code is laid out", checked by import-linter.

The contracts live in pyproject.toml ([tool.importlinter]); this runs the tool the way
a developer would, so a new import that crosses a layer fails the suite, not a review.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports missing: pip install -e '.[test]' (import-linter)")
    return found


def test_import_contracts_are_kept():
    # --no-cache: nothing written into the checkout.
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_package_is_in_a_layer():
    """A new top-level package must be placed in the layers, or the contract ignores it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    named = {part.strip() for layer in layers["layers"]
             for part in layer.replace("|", ":").split(":")}
    present = {p.stem if p.suffix == ".py" else p.name
               for p in (REPO / "appliance").iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").exists())
               and p.name not in ("__init__.py", "__main__.py")}
    assert present - named == set(), "packages outside the layers"
