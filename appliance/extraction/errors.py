"""Errors of the extraction layer; `key` is the message key the screens translate.

Extraction reports what it finds on a paper as field statuses and reasons, not as
errors; these are for the few things that stop it from looking at all.
"""


class ExtractionError(Exception):
    key = "error.generic"


class DecoderMissing(ExtractionError):
    """zxing-cpp, which reads QR codes and barcodes, is not installed: codes on the
    pages are not read (fields still come from OCR)."""
