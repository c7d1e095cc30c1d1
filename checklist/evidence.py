"""Evidence files on disk, read only once their sha256 still matches the record.

A tick earned by a job, a success criterion and a rollback trigger all rest on evidence files;
anything that reads one goes through `read_verified()` (or asks `evidence_problem()`), so a file
changed or removed after it was recorded is never taken for evidence. Plain reads: withdrawing
what rested on a broken file is the job of actions.verify_earned_evidence, never of a page.
"""
import hashlib
from pathlib import Path

from django.conf import settings

from migration.hashing import file_sha256


class EvidenceBroken(Exception):
    """An evidence file is missing or no longer matches its recorded sha256."""


def evidence_file(evidence):
    """The evidence's file on disk, refusing any path that leaves MEDIA_ROOT."""
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / evidence.path).resolve()
    if not evidence.path or not path.is_relative_to(root):
        return None
    return path


def evidence_problem(evidence):
    """'' when the evidence's file is there and matches its sha256, else what is wrong."""
    path = evidence_file(evidence)
    if path is None or not path.is_file():
        return f"'{evidence.name}' is missing from storage"
    actual = file_sha256(path)
    if actual != evidence.sha256:
        return (f"'{evidence.name}' no longer matches its recorded sha256 "
                f"({evidence.sha256[:12]}…, now {actual[:12]}…)")
    return ""


def read_verified(evidence):
    """The bytes of an evidence file, checked against its recorded sha256 as they are read."""
    path = evidence_file(evidence)
    if path is None or not path.is_file():
        raise EvidenceBroken(f"'{evidence.name}' is missing from storage")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != evidence.sha256:
        raise EvidenceBroken(f"'{evidence.name}' no longer matches its recorded sha256 "
                             f"({evidence.sha256[:12]}…, now {actual[:12]}…)")
    return data
