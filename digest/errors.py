"""One family of exceptions: the CLI turns any of them into a one-line message."""

from __future__ import annotations


class DigestError(Exception):
    """Base class for every error digest reports to a user."""


class ParseError(DigestError):
    """An input file could not be read as the format it claims or appears to be."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class StorageError(DigestError):
    """The database could not be opened, migrated or written."""


class ConfigError(DigestError):
    """A profile, configuration file or option is invalid."""


class ModelError(DigestError):
    """The model is missing, stale or was asked to do something it cannot."""


class OutputError(DigestError):
    """A file or folder digest was asked to write cannot be written there: a folder
    where a file should go, a file in the way of a folder, no permission, a full disk.
    """


class DeliveryError(DigestError):
    """Delivery cannot go on: a folder cannot be written, a wiki commit failed, or the mail
    server refuses the login, cannot be trusted or cannot be reached. The message names
    the file, repository or server; the run stops, and a re-run picks up the rest.
    """


class ValidationError(DigestError):
    """One value a user gave (a handle, an event, a time, a tag) breaks the rule for it.

    `key` names the field ("user", "time", ...) and `reason` says what is wrong, so a
    caller can place the message: a file and line, a profile key or a command argument.
    """

    def __init__(self, reason: str, *, key: str | None = None):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)


class NoDatabase(StorageError):
    """A command that only reads was pointed at a database file that does not exist."""


class ForeignDatabase(StorageError):
    """The file is an SQLite database, but not one digest created: it is left untouched."""
