"""The one models manifest (models/manifest.json) and its sha256 checks.

Every model file is pinned by sha256 so a truncated download, a stray edit or
a swapped file is refused before onnxruntime ever parses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.ocr.errors import ModelChecksumError, ModelMissingError, OcrError

MANIFEST_NAME = "manifest.json"


def default_models_dir() -> Path:
    import appliance

    return Path(appliance.__file__).resolve().parents[1] / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str  # detector | classifier | recognizer
    variant: str  # fp32 | int8
    file: str
    sha256: str
    input_shape: tuple[str | int, ...]
    licence: str
    source: str
    charset: str  # recognizer only: symbols in output order after the CTC blank
    extra: dict[str, Any]

    def path(self, models_dir: Path) -> Path:
        return models_dir / self.file

    def verified_path(self, models_dir: Path) -> Path:
        """The file's path once its sha256 matches the manifest."""
        p = self.path(models_dir)
        if not p.is_file():
            raise ModelMissingError(str(p))
        actual = sha256_file(p)
        if actual != self.sha256:
            raise ModelChecksumError(str(p), self.sha256, actual)
        return p


@dataclass(frozen=True)
class Manifest:
    models_dir: Path
    entries: tuple[ModelEntry, ...]

    @classmethod
    def load(cls, models_dir: Path) -> Manifest:
        path = models_dir / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise OcrError(f"cannot read models manifest {path}: {e}") from e
        entries = []
        for m in raw.get("models", []):
            entries.append(
                ModelEntry(
                    name=m["name"],
                    role=m["role"],
                    variant=m.get("variant", "fp32"),
                    file=m["file"],
                    sha256=m["sha256"],
                    input_shape=tuple(m.get("input_shape", ())),
                    licence=m.get("licence", ""),
                    source=m.get("source", ""),
                    charset=m.get("charset", ""),
                    extra=dict(m.get("extra", {})),
                )
            )
        return cls(models_dir, tuple(entries))

    def find(self, role: str, variant: str | None = None) -> ModelEntry:
        for e in self.entries:
            if e.role == role and (variant is None or e.variant == variant):
                return e
        raise OcrError(f"manifest {self.models_dir / MANIFEST_NAME} has no {role} {variant or ''}")
