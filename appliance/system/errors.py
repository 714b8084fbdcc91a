"""Errors of the system layer."""


class ConfigError(Exception):
    """The configuration file is missing, malformed or names a bad value; the text names the key."""
