"""OCR error types; callers catch OcrError and show a translated message key."""

from __future__ import annotations


class OcrError(Exception):
    """Base of every error the OCR package raises on purpose."""

    key = "ocr.error"


class ModelMissingError(OcrError):
    """A model file named in the manifest is absent (install_models.py not run)."""

    key = "ocr.model_missing"

    def __init__(self, path: str) -> None:
        super().__init__(
            f"model file {path} is missing; run models/install_models.py to install it"
        )
        self.path = path


class ModelChecksumError(OcrError):
    """The file on disk is not the one the manifest pins: refuse to load it."""

    key = "ocr.model_checksum"

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"model file {path} has sha256 {actual}, manifest expects {expected}; refusing to load"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class BadImageError(OcrError):
    """The input is not an image we can OCR: unreadable, empty or enormous."""

    key = "ocr.bad_image"
