"""trustramp's errors: one base class, a few narrow subclasses.

Too little data is never an exception: it is an outcome (`insufficient`) that verdicts report.
"""


class TrustrampError(Exception):
    """Base class of every error trustramp raises on purpose; the CLI prints its message."""

    exit_code = 1


class ConfigError(TrustrampError):
    """A rollout config file is unreadable, has an unknown key or an out-of-range value."""

    exit_code = 2


class InputFileError(TrustrampError):
    """An input file cannot be read at all, or lacks a required column; nothing of it lands."""

    exit_code = 3


class LockTimeout(TrustrampError):
    """Another trustramp process held the writer lock for longer than we were asked to wait."""

    exit_code = 4


class StoreError(TrustrampError):
    """The lake or catalog is missing, corrupt, or a DuckDB operation failed."""

    exit_code = 5


class NoDataError(TrustrampError):
    """A command needs data that the lake does not have (e.g. evaluate before any ingest)."""

    exit_code = 6


class UsageError(TrustrampError, ValueError):
    """An argument cannot be used: a bad date, bands out of order, a path that does not exist."""

    exit_code = 2


class NotWritableError(TrustrampError):
    """A folder trustramp must write (the home, its lake, state or tmp) is not writable."""

    exit_code = 7
