"""Errors of the records layer; `key` is the message key the screens translate."""


class RecordsError(Exception):
    key = "error.generic"


class SequenceExhausted(RecordsError):
    key = "error.sequence_exhausted"


class DossierNotFound(RecordsError):
    key = "error.dossier_not_found"


class InvalidState(RecordsError):
    """The dossier is not in a state that allows the action (e.g. signing an open one)."""

    key = "error.invalid_state"


class ScanInProgress(InvalidState):
    """A scan job is queued or running for the dossier: its papers cannot change now,
    and it cannot be erased under the worker's feet."""

    key = "error.job_active"


class UnknownProcedure(RecordsError):
    key = "error.unknown_procedure"


class NothingScanned(RecordsError):
    key = "error.nothing_scanned"
