"""mingus-deploy's SQLite -> PostgreSQL migration engine (plain Python, no Django).

Public API (stable; the command and the job layer use only this)
----------------------------------------------------------------
``from migration import steps`` gives one function per step. ``sources`` is an ordered
mapping ``{name: path}``; the name becomes the source's PostgreSQL schema. ``workdir`` holds
everything a step writes (default ``./pgmigrate-work``). ``progress`` and ``should_cancel``
are optional callables (see below). Each step returns a report and also writes it to
``workdir/reports/<step>-<time>.json``::

    steps.backup(sources, workdir, progress=None, busy_timeout=5.0) -> BackupReport
    steps.restore(manifest_path, dest_dir, workdir=None, progress=None) -> RestoreReport
    steps.assess(sources, workdir, progress=None, busy_timeout=5.0) -> AssessReport
    steps.schema(sources, target_url, workdir, apply=False, progress=None, busy_timeout=5.0) -> SchemaReport
    steps.run(sources, target_url, workdir, dry_run=False, progress=None, should_cancel=None,
              workers=None, busy_timeout=5.0, chunk_rows=None) -> RunReport
    steps.validate(sources, target_url, workdir, progress=None, should_cancel=None,
                   workers=None, busy_timeout=5.0) -> ValidateReport
    steps.rollback(sources, target_url, workdir, manifest_path=None, progress=None) -> RollbackReport
    steps.cleanup(sources, workdir, remove_sources=False, progress=None) -> CleanupReport

``target_url`` may be None for schema (SQL is generated but not checked against a server)
and rollback (files only). Steps that load or validate start worker processes
(multiprocessing "spawn"), so a script calling them must guard its entry point with
``if __name__ == "__main__":``; ``workers=1`` runs everything in the calling process.

Reports (``migration.reports``): dataclasses with ``step``, ``ok`` (bool), ``problems`` (list
of str: what needs a person -- rejected rows, mismatches, conflicts), ``warnings`` (faithful
reproductions of source issues, things left for review), ``artifacts`` (paths of every file
the step wrote, e.g. the backup manifest, unified_schema.sql, plan.json, the rejects file,
validation-report.json, the report itself), ``started_at``/``finished_at``/``duration_s``,
``to_dict()``/``to_json()``, plus step fields (``BackupReport.files``/``restore_test``,
``SchemaReport.schema_sql``/``schema_sha256``, ``RunReport.tables`` with read/loaded/rejected
per table, ``ValidateReport.differences`` naming table, key and column, ...).

Errors: unusable input raises ``migration.errors.InputError`` (``SourceError`` for a SQLite
file, ``TargetError`` for PostgreSQL); the message names the file or the URL with its
password replaced by ``***`` (``migration.redact.redact_url``, which others reuse). Problems
found in usable input are never exceptions: they are in ``report.problems``.

Progress (``migration.progress``): ``progress(event)`` receives ``ProgressEvent`` objects,
always on the calling thread: ``kind`` is "start", "progress" (rows_done, rows_total,
rate_rows_s, eta_s, bytes_done; a few per second at most), "table" (one table done), "log"
(``level`` and ``message``: a log line) or "finish". ``event.to_dict()`` gives plain data.
``should_cancel()`` is polled a few times a second; when it returns True the step stops,
keeps what is committed (a run resumes where it stopped) and reports the cancellation.

Resumability: a run records its chunk plan and one progress row per committed chunk in the
target's ``_pgmigrate`` schema; running the same step again finishes the job with every row
loaded exactly once. Rejected rows go to ``_pgmigrate.rejects`` and to a JSONL file.
"""
