"""Signed digests of the audit chain, written as files outside the database.

A digest says "the chain held `seq` events ending in `head`, with these counts per action" and
names the previous digest's hash; it is signed with AUDIT_SIGNING_KEY (Ed25519, checklist.chain).
Someone who rewrites the audit table and recomputes every hash cannot make the event at a
digest's seq carry the signed head again without the key, so `verify_audit` finds the rewrite.

When: after every sign-off, go-live request and approval (once their transaction commits), at
every evidence-pack export, and hourly from beat when anything was recorded since the last one.

Why after commit: a digest written inside a transaction that then rolls back would name a head
the chain never held, and verification would cry tampering. A crash between the commit and the
digest loses only that digest: the events are committed, and the next digest (the hourly one at
the latest) covers them. A digest is a checkpoint, never the record itself.
"""
import fcntl
import json
import logging
import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from . import chain
from .audit import AuditEvent

log = logging.getLogger(__name__)

PREFIX = "digest-"


@lru_cache(maxsize=4)
def _private_key(text):
    return chain.load_private_key(text)


def signing_key():
    return _private_key(settings.AUDIT_SIGNING_KEY)


def public_key():
    return signing_key().public_key()


def public_key_pem():
    return chain.public_key_pem(signing_key())


def directory():
    return Path(settings.AUDIT_DIGEST_DIR)


def digest_files(folder=None):
    """The digest files in writing order (their names carry a zero-padded number)."""
    folder = Path(folder) if folder else directory()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.suffix == ".json")


def read(path):
    """(document, None) or (None, reason) for one digest file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        payload = document["digest"]
        int(payload["seq"]), str(payload["head"]), int(payload["number"])
        return document, None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable digest file ({type(exc).__name__})"


def listing(limit=None):
    """The digests for the History page, newest first: number, seq, time, reason, file name."""
    rows = []
    for path in reversed(digest_files()):
        document, problem = read(path)
        payload = document["digest"] if document else {}
        rows.append({"name": path.name, "number": payload.get("number"),
                     "seq": payload.get("seq"), "created_at": payload.get("created_at"),
                     "reason": payload.get("reason", ""), "head": payload.get("head", ""),
                     "problem": problem or ""})
        if limit and len(rows) >= limit:
            break
    return rows


@contextmanager
def _locked(folder):
    # Web processes and the beat worker may write at once; the lock keeps numbers and the
    # previous-digest links in one line.
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write(reason, only_if_changed=False):
    """Sign and write a digest of the chain as committed now; return its path (None if skipped).

    Call it outside any transaction that is still to commit (see the module docstring).
    """
    folder = directory()
    with _locked(folder):
        files = digest_files(folder)
        last = read(files[-1])[0] if files else None
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        seq, head_hash = (head["seq"], head["hash"]) if head else (0, chain.GENESIS_HASH)
        if only_if_changed and last is not None and last["digest"]["seq"] == seq:
            return None
        counts = dict(AuditEvent.objects.filter(seq__lte=seq).order_by().values("action")
                      .annotate(n=Count("id")).values_list("action", "n"))
        key = signing_key()
        number = (last["digest"]["number"] + 1) if last else (len(files) + 1)
        payload = {
            "version": chain.DIGEST_VERSION,
            "number": number,
            "seq": seq,
            "head": head_hash,
            "counts": counts,
            "created_at": timezone.now().isoformat(),
            "reason": reason,
            "previous": chain.digest_sha256(last) if last else None,
            "key_id": chain.key_id(key.public_key()),
        }
        document = chain.sign_digest(key, payload)
        path = folder / f"{PREFIX}{number:08d}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    log.info("audit digest written", extra={"digest": path.name, "seq": seq, "reason": reason})
    return path


def _write_logged(reason):
    try:
        write(reason)
    except Exception:
        # The action has committed; a missing digest is covered by the next one.
        log.exception("audit digest not written", extra={"reason": reason})


def after_commit(reason):
    """Write a digest once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _write_logged(reason))


def verify(public=None):
    """Check every digest file and the chain against them.

    Returns (digest_count, problems) with problems as a list of (where, reason) strings.
    """
    public = public or public_key()
    documents, problems = [], []
    for path in digest_files():
        document, problem = read(path)
        if problem:
            problems.append((path.name, problem))
        else:
            documents.append((path.name, document))
    problems += chain.check_digests(public, documents)
    events = {seq: (hash_, action) for seq, hash_, action in
              AuditEvent.objects.order_by("seq").values_list("seq", "hash", "action")
              .iterator(chunk_size=5000)}
    good = [d["digest"] for name, d in documents if chain.check_digest_signature(public, d) is None]
    problems += [(f"event #{seq}", reason)
                 for seq, reason in chain.check_events_against_digests(events, good)]
    return len(documents), problems
