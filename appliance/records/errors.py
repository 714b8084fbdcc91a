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


class DossierSigned(InvalidState):
    """The dossier is signed: its result codes and signed PDFs are issued, so nothing
    in it may change any more (a correction must not differ from what was signed)."""

    key = "error.dossier_signed"


class PaperNotFound(RecordsError):
    """No such paper in this dossier (a stale screen, or a forged id)."""

    key = "error.paper_not_found"


class UnknownField(RecordsError):
    """The paper's type yields no field of that name (see the catalogue)."""

    key = "error.unknown_field"


class InvalidCorrection(RecordsError):
    """An officer's value fails the field's validator; `reason` is the validator's
    sentence, shown beside the field. Nothing was changed."""

    key = "error.invalid_correction"

    def __init__(self, message: str, reason: str = "", flags: tuple[str, ...] = (),
                 code: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message
        # the validator's stable codes (translated as flag.<code>): why, for the screen
        self.flags = tuple(flags)
        # without flags, which rule refused it (translated as correction.<code>):
        # "empty", "not_kind" (not a value of the field's kind), "extra_text",
        # "too_long"
        self.code = code


class UnknownPaperType(RecordsError):
    """A paper type the catalogue does not define."""

    key = "error.unknown_paper_type"


class ReasonRequired(RecordsError):
    """Deleting a page needs the officer's reason, kept in the audit trail."""

    key = "error.reason_required"


class RecordTooLarge(InvalidState):
    """The signed record would be larger than the sync wire carries (records.
    max_record_chars): nothing was issued; the dossier must be split in two. A state of
    the dossier, not a bad request: the screens answer it as a conflict (409)."""

    key = "error.record_too_large"
