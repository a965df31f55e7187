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


def as_yaml(value: object) -> str:
    """A value as the user wrote it on the command line (null, true, 0.1)."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) \
        else str(value)


def shown(value: object) -> str:
    """`as_yaml`, a pasted 3,000-character value named rather than echoed."""
    text = as_yaml(value)
    return f"{text[:60]}... ({len(text):,} characters)" if len(text) > 80 else text


def not_allowed(key: str, value: object, advice: str) -> ConfigError:
    """The one sentence for a value outside its rule: `key=value is not allowed: use
    <advice>.`"""
    return ConfigError(f"{key}={shown(value)} is not allowed: use {advice}.")
