"""Errors of provisioning: technician-facing, in English, each naming what to do next."""


class ProvisionError(Exception):
    """A provisioning step cannot go on; the text says why and what the technician does."""
