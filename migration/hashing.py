"""Hashing files: the one sha256 of a file the whole project uses (backups, manifests, evidence,
the approved schema). Plain Python, read in bounded chunks: evidence and databases can be large.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: str | Path, chunk: int = CHUNK) -> str:
    """The sha256 hex digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
