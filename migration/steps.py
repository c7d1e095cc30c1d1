"""The engine's steps, one function each: the stable API for the command and the job layer.

Every step takes the sources as ``{name: path}`` (the name becomes the PostgreSQL schema),
a work directory, and for steps that touch PostgreSQL a target URL; it returns a report
(`migration.reports`) with ``ok``, ``problems``, ``warnings``, ``artifacts`` and
``to_dict()``, and writes the same report under ``workdir/reports/``. Unusable input raises
`migration.errors.InputError` (its message names the file or the redacted URL).
See ``migration/__init__.py`` for the whole contract.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from .assess import assess_step
from .backup import backup_step, restore_step
from .cleanup import cleanup_step
from .progress import ProgressEvent
from .reports import (AssessReport, BackupReport, CleanupReport, RestoreReport, RollbackReport, RunReport,
                      SchemaReport, ValidateReport)
from .rollback import rollback_step
from .run import run_step
from .schema import schema_step
from .validate import validate_step

Sources = Mapping[str, Union[str, Path]]
Progress = Optional[Callable[[ProgressEvent], None]]
CancelCheck = Optional[Callable[[], bool]]
DEFAULT_WORKDIR = Path("pgmigrate-work")


def _paths(sources: Sources) -> dict:
    return {name: Path(path) for name, path in sources.items()}


def backup(sources: Sources, workdir: Path = DEFAULT_WORKDIR, progress: Progress = None,
           busy_timeout: float = 5.0, should_cancel: CancelCheck = None) -> BackupReport:
    """Back up every source (online backup API), check and checksum it, test the restore."""
    return backup_step(_paths(sources), Path(workdir), progress, busy_timeout, should_cancel)


def restore(manifest_path: Optional[Path], dest_dir: Path, workdir: Optional[Path] = None,
            progress: Progress = None) -> RestoreReport:
    """Restore the files of a backup manifest into dest_dir; refuses on any checksum mismatch."""
    return restore_step(Path(manifest_path) if manifest_path else None, Path(dest_dir),
                        Path(workdir) if workdir else None, progress)


def assess(sources: Sources, workdir: Path = DEFAULT_WORKDIR, progress: Progress = None,
           busy_timeout: float = 5.0, should_cancel: CancelCheck = None) -> AssessReport:
    """Describe the sources, their conflicts and misfits; estimate load time and storage."""
    return assess_step(_paths(sources), Path(workdir), progress, busy_timeout, should_cancel=should_cancel)


def schema(sources: Sources, target_url: Optional[str], workdir: Path = DEFAULT_WORKDIR, apply: bool = False,
           progress: Progress = None, busy_timeout: float = 5.0, should_cancel: CancelCheck = None) -> SchemaReport:
    """Write unified_schema.sql (checked against the target when given); apply and verify it if asked."""
    return schema_step(_paths(sources), target_url, Path(workdir), apply, progress, busy_timeout, should_cancel)


def run(sources: Sources, target_url: str, workdir: Path = DEFAULT_WORKDIR, dry_run: bool = False,
        progress: Progress = None, should_cancel: CancelCheck = None, workers: Optional[int] = None,
        busy_timeout: float = 5.0, chunk_rows: Optional[int] = None,
        schema_sha256: Optional[str] = None, remote=None) -> RunReport:
    """Load the sources into the target (resumable), or rehearse it with dry_run (leaves nothing).
    With `schema_sha256`, refuse unless unified_schema.sql is exactly that (approved) file. With
    `remote` (migration.remote.Remote) the chunks go to remote workers."""
    return run_step(_paths(sources), target_url, Path(workdir), dry_run, progress, should_cancel, workers, busy_timeout,
                    chunk_rows, schema_sha256, remote)


def validate(sources: Sources, target_url: str, workdir: Path = DEFAULT_WORKDIR, progress: Progress = None,
             should_cancel: CancelCheck = None, workers: Optional[int] = None,
             busy_timeout: float = 5.0) -> ValidateReport:
    """Compare counts, every row's content, foreign keys and sample queries between source and target."""
    return validate_step(_paths(sources), target_url, Path(workdir), progress, should_cancel, workers, busy_timeout)


def rollback(sources: Sources, target_url: Optional[str], workdir: Path = DEFAULT_WORKDIR,
             manifest_path: Optional[Path] = None, progress: Progress = None, dry_run: bool = False) -> RollbackReport:
    """Restore the sources from the backup (checksums verified) and drop exactly the migration's
    objects, never with CASCADE; with dry_run, rehearse both and change nothing."""
    return rollback_step(_paths(sources), target_url, Path(workdir), Path(manifest_path) if manifest_path else None,
                         progress, dry_run)


def cleanup(sources: Sources, workdir: Path = DEFAULT_WORKDIR, remove_sources: bool = False,
            progress: Progress = None, should_cancel: CancelCheck = None) -> CleanupReport:
    """Archive sources and records (verified tar + sha256 manifest), remove temp files and, if asked, sources."""
    return cleanup_step(_paths(sources), Path(workdir), remove_sources, progress, should_cancel)


STEPS = {"backup": backup, "restore": restore, "assess": assess, "schema": schema, "run": run,
         "validate": validate, "rollback": rollback, "cleanup": cleanup}
