"""The report every step returns: a dataclass that serialises to JSON.

Every report has `ok`, `problems` (things that need a person: rejected rows, mismatches,
conflicts), `warnings` (things reproduced faithfully from the sources or left for review),
and `artifacts` (paths of the files the step wrote, the report file itself included).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string (second precision)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class Report:
    """Fields shared by every step's report."""

    step: str = ""
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=utc_now)
    finished_at: str = ""
    duration_s: float = 0.0
    _t0: float = field(default_factory=time.monotonic, repr=False, compare=False)

    def problem(self, text: str) -> None:
        """Record something that needs a person; the report is then not ok."""
        self.problems.append(text)
        self.ok = False

    def warn(self, text: str) -> None:
        """Record something reproduced faithfully or left for review; does not fail the step."""
        self.warnings.append(text)

    def finish(self) -> "Report":
        """Stamp the end time and settle `ok` from the problems found."""
        self.finished_at = utc_now()
        self.duration_s = round(time.monotonic() - self._t0, 3)
        self.ok = not self.problems
        return self

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        data = {}
        for f in dataclasses.fields(self):
            if f.name.startswith("_"):
                continue
            data[f.name] = getattr(self, f.name)
        return json.loads(json.dumps(data, default=_jsonable))

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def summary_lines(self) -> list[str]:
        """A short readable summary for a terminal (step-specific lines come first)."""
        lines = self.details()
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        lines.append(f"{self.step}: {state} in {self.duration_s:.1f}s")
        lines += [f"  problem: {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more problems (see the report file)")
        lines += [f"  warning: {w}" for w in self.warnings[:30]]
        if len(self.warnings) > 30:
            lines.append(f"  ... and {len(self.warnings) - 30} more warnings (see the report file)")
        lines += [f"  wrote: {a}" for a in self.artifacts]
        return lines

    def details(self) -> list[str]:
        """Step-specific summary lines; subclasses override."""
        return []


def end_step(report: Report, workdir: Path, reporter=None) -> Report:
    """How a step ends: its progress reporter says it is done, the report takes its final state
    (ok, duration) and is written under `workdir/reports/`; returns the report."""
    if reporter is not None:
        reporter.finish()
    report.finish()
    write_report(report, workdir)
    return report


def write_report(report: Report, workdir: Path) -> Path:
    """Write the report under `workdir/reports/` (one file per call, never overwritten)."""
    reports = Path(workdir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = reports / f"{report.step}-{stamp}.json"
    report.artifacts.append(str(path))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(report.to_json() + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


@dataclass
class BackupReport(Report):
    step: str = "backup"
    backup_dir: str = ""
    manifest: str = ""
    files: list[dict] = field(default_factory=list)
    restore_test: dict = field(default_factory=dict)

    def details(self) -> list[str]:
        lines = [f"backup {f['name']}: {f['backup']} ({f['size']} bytes, {sum(f['row_counts'].values())} rows, "
                 f"integrity {f['integrity']})" for f in self.files]
        if self.restore_test:
            lines.append(f"restore test: {'ok' if self.restore_test.get('ok') else 'FAILED'}")
        return lines


@dataclass
class RestoreReport(Report):
    step: str = "restore"
    manifest: str = ""
    dest_dir: str = ""
    files: list[dict] = field(default_factory=list)

    def details(self) -> list[str]:
        return [f"restored {f['name']} -> {f['path']}" for f in self.files]


@dataclass
class AssessReport(Report):
    step: str = "assess"
    sources: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    estimate: dict = field(default_factory=dict)

    def details(self) -> list[str]:
        lines = []
        for s in self.sources:
            rows = sum(t["rows"] for t in s["tables"])
            lines.append(f"{s['name']}: {len(s['tables'])} tables, {rows} rows, {s['size']} bytes")
        for c in self.conflicts:
            lines.append(f"conflict: table {c['table']} in {', '.join(c['sources'])} ({c['kind']})")
        if self.estimate:
            lines.append(f"estimate: ~{self.estimate.get('seconds')}s to load, "
                         f"~{self.estimate.get('postgres_bytes')} bytes in PostgreSQL")
        return lines


@dataclass
class SchemaReport(Report):
    step: str = "schema"
    schema_sql: str = ""
    schema_sha256: str = ""
    plan: str = ""
    policy: str = ""
    tables: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verified_against_target: bool = False
    applied: bool = False
    verification: dict = field(default_factory=dict)
    uuid_extension: bool = False  # present in the target's pg_extension after the apply

    def details(self) -> list[str]:
        lines = [f"schema: {self.schema_sql} (sha256 {self.schema_sha256})", f"policy: {self.policy}"]
        lines += [f"  {t['source']}.{t['table']} -> {t['target']}" for t in self.tables]
        if self.applied:
            v = self.verification
            lines.append(f"applied; verified {v.get('checked', 0)} objects, {len(v.get('missing', []))} missing")
        return lines


@dataclass
class RunReport(Report):
    step: str = "run"
    dry_run: bool = False
    workers: int = 0
    schema_sha256: str = ""  # the unified_schema.sql this run applied
    tables: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    rejects_file: str = ""
    verification: dict = field(default_factory=dict)
    # values converted under the reviewed decisions of unified_schema.sql (epoch, NUL)
    converted: list[dict] = field(default_factory=list)

    def details(self) -> list[str]:
        lines = []
        for c in self.converted:
            lines.append(f"  converted as decided: {c['table']}.{c['column']} {c['decision']}: {c['values']} values")
        for t in self.tables:
            lines.append(f"  {t['source']}.{t['table']} -> {t['target']}: read {t['read']}, loaded {t['loaded']}, "
                         f"rejected {t['rejected']}")
        tot = self.totals
        if tot:
            lines.append(f"{'dry run' if self.dry_run else 'run'}: read {tot.get('read')}, loaded {tot.get('loaded')}, "
                         f"rejected {tot.get('rejected')} rows ({tot.get('rows_per_s')} rows/s)")
        return lines


@dataclass
class ValidateReport(Report):
    step: str = "validate"
    tables: list[dict] = field(default_factory=list)
    foreign_keys: list[dict] = field(default_factory=list)
    sample_queries: list[dict] = field(default_factory=list)
    differences: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    # values compared after the conversion a reviewed decision made (not differences)
    converted: list[dict] = field(default_factory=list)
    _checker_pids: set = field(default_factory=set, repr=False, compare=False)

    def details(self) -> list[str]:
        lines = [f"  converted as decided: {c['table']}.{c['column']} {c['decision']}: {c['values']} values"
                 for c in self.converted]
        lines += [f"  {t['target']}: source {t['source_rows']} (minus {t['rejected']} rejected), target "
                 f"{t['target_rows']}, checksum {'match' if t['match'] else 'MISMATCH'}" for t in self.tables]
        bad = [q for q in self.sample_queries if q["equal"] is False]
        lines.append(f"sample queries: {len(self.sample_queries) - len(bad)}/{len(self.sample_queries)} equal")
        return lines


@dataclass
class RollbackReport(Report):
    step: str = "rollback"
    manifest: str = ""
    dry_run: bool = False  # a rehearsal: nothing restored, the drops rolled back
    restored: list[dict] = field(default_factory=list)
    target_actions: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # what was (or, rehearsing, would be) dropped
    dependants: list[str] = field(default_factory=list)  # other objects that block the drop

    def details(self) -> list[str]:
        verb = "would restore" if self.dry_run else "restored"
        return ([f"{verb} {r['name']} -> {r['path']}" for r in self.restored]
                + [f"target: {a}" for a in self.target_actions]
                + [f"blocked by: {d}" for d in self.dependants])


@dataclass
class CleanupReport(Report):
    step: str = "cleanup"
    archive: str = ""
    archive_sha256: str = ""
    archive_manifest: str = ""
    members: list[dict] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def details(self) -> list[str]:
        lines = [f"archive: {self.archive} (sha256 {self.archive_sha256}, {len(self.members)} members, verified)"]
        lines += [f"removed: {r}" for r in self.removed]
        lines += [f"kept: {k}" for k in self.kept]
        return lines
