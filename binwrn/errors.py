"""Errors a user can cause, reported as one sentence without a traceback.

Library code raises `ConfigError` (a bad setting) or `DataError` (missing or broken data);
the console entry points catch `BinwrnError` and print its message alone.
"""


class BinwrnError(Exception):
    """A problem the user can fix; the message says what to change."""


class ConfigError(BinwrnError, ValueError):
    """A configuration value outside what the method allows."""


class DataError(BinwrnError):
    """Data that is missing, unreadable or not in a supported layout."""


class Interrupted(Exception):
    """Work stopped on request (SIGTERM) after saving what a resume needs; not a failure."""


class Diverged(Exception):
    """The loss stopped being a finite number: training cannot continue from here."""
