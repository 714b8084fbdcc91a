"""Errors of the system layer."""


class ConfigError(Exception):
    """The configuration file is missing, malformed or names a bad value; the text names the key."""


class PrinterError(Exception):
    """The receipt could not be printed; `key` is what the kiosk shows, translated."""

    key = "printer.failed"


class PrinterFailed(PrinterError):
    key = "printer.failed"  # lp refused or the queue is stopped or unknown


class PrinterMissing(PrinterError):
    key = "printer.missing"  # the print command (lp, cups-client) is not installed


class PrinterTimeout(PrinterError):
    key = "printer.timeout"  # cupsd did not answer in printer.timeout_seconds
