"""The MINGUS repository, read with git: is the tree clean and at the deployed commit, are the
migration scripts and configuration files committed there, and do the documents the
Documentation items name exist in that commit and say what they must? Plain Python, no Django.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from .report import CheckInputError

MIN_DOC_BYTES = 200  # a heading and a line is not a procedure
TIMEOUT = 60


def git(repo, *args) -> str:
    # safe.directory: the checkout may belong to another user than the worker's.
    argv = ["git", "-c", f"safe.directory={repo}", "-C", str(repo), *args]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckInputError(f"git {args[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise CheckInputError(f"git {' '.join(args[:2])}: "
                              f"{done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout.decode("utf-8", errors="replace")


def state(repo, commit="") -> dict:
    """{head, commit, at_commit, dirty: [...]} of the checkout at `repo`."""
    if not repo or not Path(repo).is_dir():
        raise CheckInputError(f"no such repository folder: {repo or '(not set)'}")
    git(repo, "rev-parse", "--is-inside-work-tree")
    head = git(repo, "rev-parse", "HEAD").strip()
    wanted = git(repo, "rev-parse", "--verify", f"{commit or 'HEAD'}^{{commit}}").strip()
    dirty = [line for line in git(repo, "status", "--porcelain", "--untracked-files=all")
             .splitlines() if line.strip()]
    return {"head": head, "commit": wanted, "at_commit": head == wanted, "dirty": dirty[:50],
            "subject": git(repo, "log", "-1", "--format=%s", wanted).strip()[:200]}


def committed(repo, commit, paths) -> dict:
    """path -> True when the file is in `commit` (and the tree holds no change to it)."""
    tracked = set(git(repo, "ls-tree", "-r", "--name-only", commit).splitlines())
    changed = {line[3:].strip() for line in git(repo, "status", "--porcelain",
                                                  "--untracked-files=all").splitlines()}
    return {p: p in tracked and p not in changed for p in paths}


def document(repo, commit, path, must_contain=()) -> tuple[bool, str]:
    """(ok, reason) for one document in `commit`: present, not a stub, holding each phrase."""
    try:
        text = git(repo, "show", f"{commit}:{path}")
    except CheckInputError:
        return False, f"{path} is not in commit {commit[:12]}"
    if len(text.encode()) < MIN_DOC_BYTES:
        return False, f"{path} has {len(text.encode())} bytes (a stub: fewer than {MIN_DOC_BYTES})"
    missing = [m for m in must_contain if m.lower() not in text.lower()]
    if missing:
        return False, f"{path} does not mention {', '.join(repr(m) for m in missing)}"
    return True, f"{path} in {commit[:12]}, {len(text.encode())} bytes"
