"""The exceptions the engine raises, and what each means for a caller.

`InputError` and its subclasses mean "unusable input": the command exits 2 and prints the
message, which always names the file or the (redacted) URL and never holds a password.
Problems found in usable input are not exceptions: they go into a report's `problems`.
"""
from __future__ import annotations


class InputError(Exception):
    """Bad usage or unusable input (missing/corrupt/locked file, unreachable database...)."""


class SourceError(InputError):
    """A SQLite source cannot be used; the message names the file."""


class TargetError(InputError):
    """The PostgreSQL target cannot be used or went away; the message names the redacted URL."""


class Cancelled(Exception):
    """The caller's `should_cancel()` returned True; work done so far is kept and resumable."""
