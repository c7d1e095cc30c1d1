"""The cleanup step: archive the SQLite files and the migration's records, then tidy up.

The archive is a tar.gz with a manifest of every member's sha256. It is read back and every
member re-hashed before anything is removed; a source file is deleted only when asked
(``remove_sources``) and only if its archived copy verified and the file on disk is still the
one archived.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from datetime import datetime, timezone
from pathlib import Path

from .progress import Reporter
from .reports import CleanupReport, end_step
from .hashing import file_sha256
from .sources import check_source_file

RECORDS = ("unified_schema.sql", "plan.json", "validation-report.json")
RECORD_DIRS = ("logs", "reports")
TEMP_DIRS = ("tmp", "cache")


def _members(sources: dict, workdir: Path) -> list:
    """(path on disk, name in the archive, kind) of everything to archive."""
    out = []
    for name, path in sources.items():
        path = Path(path)
        for suffix in ("", "-wal"):
            p = path.with_name(path.name + suffix)
            if p.exists():
                out.append((p, f"sources/{name}/{p.name}", "source" if not suffix else "source-wal"))
    for rec in RECORDS:
        if (workdir / rec).exists():
            out.append((workdir / rec, f"records/{rec}", "record"))
    for rej in sorted(workdir.glob("*rejects-*.jsonl")):
        out.append((rej, f"records/{rej.name}", "record"))
    for d in RECORD_DIRS:
        for p in sorted((workdir / d).rglob("*")) if (workdir / d).is_dir() else []:
            if p.is_file():
                out.append((p, f"records/{p.relative_to(workdir)}", "record"))
    for p in sorted((workdir / "backups").glob("*/manifest.json")):
        out.append((p, f"records/{p.relative_to(workdir)}", "record"))
    return out


def cleanup_step(sources: dict, workdir: Path, remove_sources: bool = False, progress=None,
                 should_cancel=None) -> CleanupReport:
    """Archive sources and records, verify the archive, remove temp files (and sources if asked)."""
    workdir = Path(workdir)
    report = CleanupReport()
    rep = Reporter("cleanup", progress, should_cancel, log_path=workdir / "logs" / "cleanup.log")
    for path in sources.values():
        check_source_file(Path(path))
    members = _members(sources, workdir)
    rep.start(tables_total=len(members), message=f"archiving {len(members)} files")
    archive_dir = workdir / "archive"
    archive_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(archive_dir, 0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    archive = archive_dir / f"pgmigrate-archive-{stamp}.tar.gz"
    before = {}
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path, arcname, kind in members:
            rep.check_cancel()  # nothing is removed before the archive is complete and verified
            before[arcname] = file_sha256(path)
            tar.add(str(path), arcname=arcname, recursive=False)
            rep.table_done(arcname)
    # Read the archive back: every member must hash to what was read from disk.
    after = {}
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar:
            if not info.isfile():
                continue
            digest = hashlib.sha256()
            with tar.extractfile(info) as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            after[info.name] = digest.hexdigest()
    for path, arcname, kind in members:
        ok = after.get(arcname) == before[arcname]
        report.members.append({"name": arcname, "path": str(path), "kind": kind, "sha256": before[arcname],
                               "verified": ok})
        if not ok:
            report.problem(f"{arcname}: the archived copy does not match {path} (was it written during cleanup?)")
    report.archive = str(archive)
    report.archive_sha256 = file_sha256(archive)
    manifest = archive_dir / f"pgmigrate-archive-{stamp}.json"
    fd = os.open(manifest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"archive": archive.name, "sha256": report.archive_sha256, "members": report.members}, fh, indent=1)
    report.archive_manifest = str(manifest)
    report.artifacts += [str(archive), str(manifest)]
    for d in TEMP_DIRS:
        if (workdir / d).exists():
            shutil.rmtree(workdir / d)
            report.removed.append(str(workdir / d))
    verified = {m["path"] for m in report.members if m["verified"]}
    for name, path in sources.items():
        path = Path(path)
        related = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        if not remove_sources:
            report.kept.append(str(path))
            continue
        archived = all(str(p) in verified for p in related)
        unchanged = archived and all(file_sha256(p) == next(m["sha256"] for m in report.members if m["path"] == str(p))
                                     for p in related)
        if not (archived and unchanged):
            report.problem(f"{path}: not removed: no verified archive of its current content")
            report.kept.append(str(path))
            continue
        for p in related + [path.with_name(path.name + "-shm")]:
            if p.exists():
                p.unlink()
                report.removed.append(str(p))
    return end_step(report, workdir, rep)
