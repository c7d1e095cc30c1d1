"""Reading files a user named without being led astray: where, what kind, how much.

A path a lead configured (a migration source, an env file, an app spec) or an operator passed
(a checklist to import) is read only if it is a regular file. A FIFO would block `open()` until a
writer comes (Cancel cannot interrupt a blocked open), a device such as ``/dev/zero`` never ends,
and a directory is not a file: every open here is non-blocking and the kind is taken from
``fstat`` of the opened descriptor, so nothing hangs and the check is about what was opened.
Reads are bounded in size. Paths configured in the app must also lie under configured roots,
resolved (a symlink leading out of a root is refused) and never the app's own database.

Plain Python, so the engine and the checks use it without Django; refusals are `UnsafeFile`
(an `InputError`), whose message names the path.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from .errors import InputError

# Opening never blocks (FIFO), never makes a terminal ours, never leaks into a child process.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class UnsafeFile(InputError):
    """A path that may not be read (wrong kind, outside the roots, too large); names the path."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path, what: str = "file") -> int:
    """Open `path` read-only without blocking; return the descriptor of a regular file, or refuse."""
    try:
        fd = os.open(str(path), _OPEN_FLAGS)
    except FileNotFoundError:
        raise UnsafeFile(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UnsafeFile(f"{what} {path}: is a directory, not a regular file") from None
    except OSError as exc:
        raise UnsafeFile(f"{what} {path}: cannot be opened ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeFile(f"{what} {path}: is {_kind(mode)}, not a regular file")
    return fd


def check_regular(path, what: str = "file") -> os.stat_result:
    """Refuse anything but an existing regular file; its stat."""
    fd = open_regular(path, what)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def read_bytes(path, max_bytes: int, what: str = "file") -> bytes:
    """The whole content of a regular file no larger than `max_bytes`."""
    fd = open_regular(path, what)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise UnsafeFile(f"{what} {path}: is {size} bytes, more than the {max_bytes} allowed")
        chunks, total = [], 0
        while True:
            # One byte past the limit tells a file that grew while it was read.
            block = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if total > max_bytes:
                raise UnsafeFile(f"{what} {path}: grew past the {max_bytes} bytes allowed while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path, max_bytes: int, what: str = "file", encoding: str = "utf-8") -> str:
    """`read_bytes` decoded; a file that is not valid text is refused, naming the path."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnsafeFile(f"{what} {path}: is not {encoding} text (byte {exc.start})") from None


def _related(path: Path) -> set:
    """A SQLite file and the files beside it that hold its data."""
    return {path.with_name(path.name + s) for s in ("", "-wal", "-shm", "-journal")}


def resolve_under_roots(path, roots: Iterable, forbidden: Iterable = (), what: str = "file",
                        must_exist: bool = True) -> Path:
    """The resolved path of a regular file under one of `roots`, or `UnsafeFile` naming the path.

    Refused: relative paths (they would depend on the worker's working directory), anything
    outside the roots once symlinks are resolved, the `forbidden` files (the app's own database,
    with its -wal/-shm/-journal), and anything but a regular file. With `must_exist` off (a
    rollback restoring a source that was removed) a missing file is accepted when its folder
    passes the same checks.
    """
    roots = [Path(r).resolve() for r in roots if str(r).strip()]
    if not roots:
        raise UnsafeFile(f"{what} {path}: no folders are configured to read {what}s from")
    given = Path(str(path))
    if not given.is_absolute():
        raise UnsafeFile(f"{what} {path}: must be an absolute path")
    try:
        real = given.resolve(strict=True)
    except FileNotFoundError:
        if must_exist or os.path.lexists(given) or not given.parent.is_dir():
            raise UnsafeFile(f"{what} {path}: no such file") from None
        real = given.parent.resolve(strict=True) / given.name
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission error on the way
        raise UnsafeFile(f"{what} {path}: cannot be resolved ({getattr(exc, 'strerror', None) or exc})") from None
    names = ", ".join(str(r) for r in roots)
    if not any(real == r or r in real.parents for r in roots):
        lexical = Path(os.path.normpath(given))
        if any(r in lexical.parents for r in roots) or given.is_symlink():
            raise UnsafeFile(f"{what} {path}: is a symlink leading to {real}, outside the allowed folders ({names})")
        raise UnsafeFile(f"{what} {path}: is outside the allowed folders ({names})")
    bad = set()
    for f in forbidden:
        if f:
            bad |= {p.resolve() for p in _related(Path(f))}
    if real in bad:
        raise UnsafeFile(f"{what} {path}: is the app's own database; it is never read as a {what}")
    if real.exists() or must_exist:
        check_regular(real, what)
    return real
