"""The backup and restore steps: consistent copies of the SQLite files, proven restorable.

A backup is made with SQLite's online backup API (so it is consistent even while the
application writes), checked with ``PRAGMA integrity_check``, described in a manifest
(file, size, sha256, tables, row counts, time) and kept owner-only (0700 directory, 0600
files). Every backup is immediately restored into a scratch directory and compared with the
manifest; that restore test is part of the backup's report.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from .catalog import INTERNAL_TABLES, qi
from .errors import Cancelled, InputError, SourceError
from .progress import Reporter
from .reports import BackupReport, RestoreReport, end_step, utc_now, write_report
from .hashing import file_sha256
from .sources import check_source_file, describe_sqlite_error, open_source

MANIFEST = "manifest.json"
BACKUP_PAGES = 4096  # pages copied per step of the online backup


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def table_counts(con: sqlite3.Connection) -> dict:
    """{table: row count} for every user table of an open database."""
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {}
    for name in names:
        if name in INTERNAL_TABLES or name.startswith("sqlite_"):
            continue
        try:
            out[name] = con.execute(f"SELECT count(*) FROM {qi(name)}").fetchone()[0]
        except sqlite3.OperationalError as exc:  # a virtual table whose module is missing
            out[name] = f"unreadable: {exc}"
    return out


def _backup_one(name: str, src: Path, dest: Path, busy_timeout: float, rep: Reporter) -> dict:
    check_source_file(src)
    tmp = dest.with_suffix(".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    source = open_source(src, busy_timeout=busy_timeout)
    target = sqlite3.connect(tmp)
    try:
        def progress(status, remaining, total):
            rep.check_cancel()  # raising here aborts the online backup between steps
            rep.log(f"backup {name}: {total - remaining}/{total} pages") if remaining == 0 else None

        source.backup(target, pages=BACKUP_PAGES, progress=progress, sleep=0)
        journal = source.execute("PRAGMA journal_mode").fetchone()[0]
        # A self-contained file: the copy must not need a -wal file next to it.
        target.execute("PRAGMA journal_mode = DELETE")
        integrity = [r[0] for r in target.execute("PRAGMA integrity_check").fetchall()]
        counts = table_counts(target)
    except sqlite3.Error as exc:
        raise describe_sqlite_error(src, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        target.close()
        source.close()
    os.replace(tmp, dest)
    os.chmod(dest, 0o600)
    return {"name": name, "source": str(Path(src).resolve()), "backup": dest.name, "size": dest.stat().st_size,
            "sha256": file_sha256(dest), "journal_mode": journal,
            "integrity": "ok" if integrity == ["ok"] else "; ".join(integrity[:5]),
            "tables": sorted(counts), "row_counts": counts, "time": utc_now()}


def backup_step(sources: dict, workdir: Path, progress=None, busy_timeout: float = 5.0,
                should_cancel=None) -> BackupReport:
    """Back up every source into workdir/backups/<time>/ with a manifest; test the restore."""
    workdir = Path(workdir)
    report = BackupReport()
    rep = Reporter("backup", progress, should_cancel, log_path=workdir / "logs" / "backup.log")
    rep.start(tables_total=len(sources), message=f"backing up {len(sources)} files")
    for name, path in sources.items():  # every file is checked before anything is written
        check_source_file(Path(path))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    _private_dir(workdir / "backups")
    folder = _private_dir(workdir / "backups" / stamp)
    names = _file_names(sources)
    for name, path in sources.items():
        try:
            entry = _backup_one(name, Path(path), folder / names[name], busy_timeout, rep)
        except Cancelled:
            shutil.rmtree(folder)  # a backup without its manifest is no backup; leave none
            raise
        report.files.append(entry)
        if entry["integrity"] != "ok":
            (folder / names[name]).unlink()
            raise SourceError(f"{path}: is corrupt (integrity_check of its online backup: {entry['integrity']})")
        rep.table_done(name, f"{name} backed up ({entry['size']} bytes)")
    manifest = {"created": utc_now(), "backup_dir": str(folder), "files": report.files}
    manifest_path = folder / MANIFEST
    fd = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    report.backup_dir = str(folder)
    report.manifest = str(manifest_path)
    report.artifacts.append(str(manifest_path))
    with tempfile.TemporaryDirectory(prefix="restore-test-", dir=_private_dir(workdir / "tmp")) as scratch:
        test = restore_test(manifest_path, Path(scratch))
    report.restore_test = test
    if not test["ok"]:
        report.problem("restore test failed: " + "; ".join(test["problems"]))
    return end_step(report, workdir, rep)


def _file_names(sources: dict) -> dict:
    """A distinct file name per source inside one backup folder."""
    out, used = {}, set()
    for name, path in sources.items():
        fname = Path(path).name
        if fname in used:
            fname = f"{name}-{fname}"
        used.add(fname)
        out[name] = fname
    return out


def manifest_file(path: Path) -> Path:
    """The manifest file, given the file itself or its backup folder."""
    path = Path(path)
    return path / MANIFEST if path.is_dir() else path


def read_manifest(manifest_path: Path) -> dict:
    """The manifest, with a clear error when it is missing or unreadable."""
    manifest_path = manifest_file(manifest_path)
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{manifest_path}: no such manifest") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest_path}: unreadable manifest ({exc})") from None


def latest_manifest(workdir: Path) -> Path:
    """The newest backup manifest in the workdir."""
    folders = sorted((Path(workdir) / "backups").glob(f"*/{MANIFEST}"))
    if not folders:
        raise InputError(f"{Path(workdir) / 'backups'}: no backup manifest found; run the backup step first")
    return folders[-1]


def verify_backups(manifest_path: Path) -> tuple[dict, list]:
    """(manifest, problems): every backup file present with the manifest's size and sha256."""
    manifest_path = manifest_file(manifest_path)
    manifest = read_manifest(manifest_path)
    folder = manifest_path.parent
    problems = []
    for f in manifest["files"]:
        path = folder / f["backup"]
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        digest = file_sha256(path)
        if digest != f["sha256"]:
            problems.append(f"{path}: sha256 {digest} does not match the manifest's {f['sha256']}")
    return manifest, problems


def _copy_verified(src: Path, dest: Path, sha256: str) -> None:
    tmp = dest.with_name(dest.name + ".restoring")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    if file_sha256(tmp) != sha256:
        tmp.unlink()
        raise SourceError(f"{dest}: the restored copy does not match the manifest's sha256")
    os.replace(tmp, dest)


def restore_files(manifest_path: Path, destinations: dict) -> list:
    """Copy backups to {name: destination path} after verifying every checksum first."""
    manifest, problems = verify_backups(manifest_path)
    if problems:
        raise InputError("refusing to restore: " + "; ".join(problems))
    folder = manifest_file(manifest_path).parent
    out = []
    for f in manifest["files"]:
        if f["name"] not in destinations:
            continue
        dest = Path(destinations[f["name"]])
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy_verified(folder / f["backup"], dest, f["sha256"])
        out.append({"name": f["name"], "path": str(dest), "sha256": f["sha256"], "size": f["size"]})
    return out


def restore_test(manifest_path: Path, scratch: Path) -> dict:
    """Restore into `scratch` and compare checksums and row counts with the manifest."""
    result = {"ok": True, "checked_files": 0, "problems": [], "scratch": str(scratch)}
    try:
        manifest = read_manifest(manifest_path)
        restored = restore_files(manifest_path, {f["name"]: scratch / f["backup"] for f in manifest["files"]})
    except (InputError, OSError) as exc:
        return {**result, "ok": False, "problems": [str(exc)]}
    result["problems"] += reopen_restored(manifest, restored)
    result["checked_files"] = len(restored)
    result["ok"] = not result["problems"]
    return result


def reopen_restored(manifest: dict, restored: list) -> list:
    """Open each restored file as SQLite, run integrity_check and compare every table's row
    count with the manifest: a checksum proves the bytes were copied, this proves they are the
    database that was backed up. Returns the problems found."""
    problems = []
    by_name = {f["name"]: f for f in manifest["files"]}
    for r in restored:
        try:
            con = open_source(Path(r["path"]))
            try:
                integrity = [row[0] for row in con.execute("PRAGMA integrity_check").fetchall()]
                counts = table_counts(con)
            finally:
                con.close()
        except (SourceError, sqlite3.Error) as exc:
            problems.append(f"{r['name']}: the restored file does not open as SQLite: {exc}")
            continue
        if integrity != ["ok"]:
            problems.append(f"{r['name']}: integrity_check of the restored file: "
                            f"{'; '.join(integrity[:3])}")
        expected = by_name[r["name"]].get("row_counts")
        if counts != expected:
            differ = sorted(t for t in set(counts) | set(expected or {})
                            if counts.get(t) != (expected or {}).get(t))
            problems.append(f"{r['name']}: row counts after restore differ from the manifest "
                            f"({', '.join(differ[:5])})")
    return problems


def restore_step(manifest_path: Optional[Path], dest_dir: Path, workdir: Optional[Path] = None, progress=None) -> RestoreReport:
    """Put the backed-up files into `dest_dir` after checking every checksum (refuses on any mismatch)."""
    if manifest_path is None:
        if workdir is None:
            raise InputError("restore needs --manifest (or a --workdir holding backups)")
        manifest_path = latest_manifest(workdir)
    manifest_path = manifest_file(manifest_path)
    report = RestoreReport(manifest=str(manifest_path), dest_dir=str(dest_dir))
    rep = Reporter("restore", progress)
    manifest = read_manifest(manifest_path)
    _private_dir(Path(dest_dir))
    report.files = restore_files(manifest_path, {f["name"]: Path(dest_dir) / f["backup"] for f in manifest["files"]})
    for f in report.files:
        rep.table_done(f["name"], f"restored {f['path']}")
    for problem in reopen_restored(manifest, report.files):
        report.problem(problem)
    rep.finish()
    report.finish()
    if workdir is not None:
        write_report(report, Path(workdir))
    return report
