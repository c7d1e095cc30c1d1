"""``manage.py pgmigrate STEP``: drive the migration engine from a shell.

Exit status: 0 done and clean; 1 the step ran and found problems; 2 bad usage or unusable
input (the message names the file or the URL, password redacted); 3 an internal error.
``--json`` prints the step's report on stdout; otherwise a summary is printed and long steps
show a progress bar on stderr.
"""
from __future__ import annotations

import json
import re
import os
import sys
import time
import traceback
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from migration import steps
from migration.errors import InputError
from migration.redact import redact_url, scrub, url_password
from migration.sources import parse_source_args

STEP_NAMES = ("backup", "restore", "assess", "schema", "run", "validate", "rollback", "cleanup")
NEEDS_TARGET = ("run", "validate")
NEEDS_SOURCES = ("backup", "assess", "schema", "run", "validate", "cleanup")


class ProgressPrinter:
    """Progress bar (terminal) or throttled progress lines (pipe/log) on stderr."""

    def __init__(self, stream, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.last = 0.0
        self.open_bar = False

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        if event.kind == "log":
            self._line(f"{event.step}: {event.level}: {event.message}")
        elif event.kind == "progress" and event.rows_total:
            now = time.monotonic()
            if not self.tty and now - self.last < 0.5:
                return
            self.last = now
            frac = event.fraction or 0.0
            rate = f"{event.rate_rows_s:,.0f} rows/s" if event.rate_rows_s else ""
            eta = f"eta {event.eta_s:.0f}s" if event.eta_s is not None else ""
            text = f"{event.step}: {event.rows_done}/{event.rows_total} rows ({frac:.0%}) {rate} {eta}".rstrip()
            if self.tty:
                bar = "#" * int(frac * 30)
                self.stream.write(f"\r[{bar:<30}] {text}\033[K")
                self.stream.flush()
                self.open_bar = True
            else:
                self._line(text)
        elif event.kind in ("start", "finish"):
            self._line(f"{event.step}: {event.message}")

    def _line(self, text: str) -> None:
        if self.open_bar:
            self.stream.write("\n")
            self.open_bar = False
        self.stream.write(text + "\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "Migrate SQLite databases to PostgreSQL: " + " | ".join(STEP_NAMES)

    def add_arguments(self, parser):
        parser.add_argument("step", choices=STEP_NAMES)
        parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH",
                            help="a SQLite file; NAME becomes its PostgreSQL schema (repeatable)")
        parser.add_argument("--target", default=os.environ.get("PGMIGRATE_TARGET_URL", ""),
                            help="PostgreSQL URL (default $PGMIGRATE_TARGET_URL); not needed by backup, restore, assess")
        parser.add_argument("--workdir", default="pgmigrate-work", help="where reports, backups and logs go")
        parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
        parser.add_argument("--dry-run", action="store_true", help="run, rollback: rehearse in a rolled-back transaction, changing nothing")
        parser.add_argument("--apply", action="store_true", help="schema: create the objects in the target")
        parser.add_argument("--manifest", help="restore/rollback: backup manifest (default: the newest in --workdir)")
        parser.add_argument("--dest", help="restore: directory to restore the files into")
        parser.add_argument("--workers", type=int, help="run/validate: worker processes (default: cores + 1)")
        parser.add_argument("--chunk-rows", type=int, help="run: rows per transaction (default: from row width)")
        parser.add_argument("--schema-sha256", metavar="HEX",
                            help="run: refuse unless unified_schema.sql in --workdir has this sha256 "
                                 "(the approved file) and still matches the sources' schema")
        parser.add_argument("--busy-timeout", type=float, default=5.0,
                            help="seconds to wait for a SQLite file locked by a writer")
        parser.add_argument("--remove-sources", action="store_true",
                            help="cleanup: delete the SQLite files once their archived copy is verified")

    def handle(self, *args, **opts):
        step = opts["step"]
        target = opts["target"] or None
        secret = url_password(target or "")
        try:
            report = self._call(step, opts, target)
        except InputError as exc:
            self._fail(scrub(str(exc), secret), 2, opts["json"])
        except KeyboardInterrupt:
            self._fail("interrupted; a run can be resumed by running it again", 2, opts["json"])
        except Exception as exc:  # a bug: show where, without any secret
            tb = scrub("".join(traceback.format_exception(exc)), secret)
            sys.stderr.write(tb)
            self._fail(f"internal error: {scrub(f'{type(exc).__name__}: {exc}', secret)}", 3, opts["json"])
        if opts["json"]:
            self.stdout.write(report.to_json())
        else:
            self.stdout.write("\n".join(report.summary_lines()))
        if not report.ok:
            sys.exit(1)

    def _fail(self, message: str, code: int, as_json: bool):
        if as_json:
            self.stdout.write(json.dumps({"ok": False, "error": message, "exit": code}))
        raise CommandError(message, returncode=code)

    def _call(self, step: str, opts: dict, target):
        sources = parse_source_args(opts["source"])
        workdir = Path(opts["workdir"])
        if step in NEEDS_SOURCES and not sources:
            raise InputError(f"{step} needs at least one --source NAME=PATH")
        if step in NEEDS_TARGET and not target:
            raise InputError(f"{step} needs --target (a PostgreSQL URL) or $PGMIGRATE_TARGET_URL")
        if opts["apply"] and not target:
            raise InputError("schema --apply needs --target")
        if target and "://" not in target and "=" not in target:
            raise InputError(f"--target {redact_url(target)!r} is not a PostgreSQL URL (postgresql://user@host/db)")
        printer = ProgressPrinter(sys.stderr, enabled=True)
        common = {"progress": printer}
        if step == "backup":
            return steps.backup(sources, workdir, busy_timeout=opts["busy_timeout"], **common)
        if step == "restore":
            if not opts["dest"]:
                raise InputError("restore needs --dest DIR (where to put the files)")
            return steps.restore(opts["manifest"], Path(opts["dest"]), workdir=workdir, **common)
        if step == "assess":
            return steps.assess(sources, workdir, busy_timeout=opts["busy_timeout"], **common)
        if step == "schema":
            return steps.schema(sources, target, workdir, apply=opts["apply"], busy_timeout=opts["busy_timeout"], **common)
        if opts["schema_sha256"] is not None and (
                step != "run" or not re.fullmatch(r"[0-9a-fA-F]{64}", opts["schema_sha256"].strip())):
            raise InputError("--schema-sha256 takes the 64 hex digits of the approved "
                             "unified_schema.sql, and only with the run step")
        if step == "run":
            return steps.run(sources, target, workdir, dry_run=opts["dry_run"], workers=opts["workers"],
                             busy_timeout=opts["busy_timeout"], chunk_rows=opts["chunk_rows"],
                             schema_sha256=opts["schema_sha256"], **common)
        if step == "validate":
            return steps.validate(sources, target, workdir, workers=opts["workers"], busy_timeout=opts["busy_timeout"],
                                  **common)
        if step == "rollback":
            return steps.rollback(sources, target, workdir, manifest_path=opts["manifest"], dry_run=opts["dry_run"],
                                  **common)
        return steps.cleanup(sources, workdir, remove_sources=opts["remove_sources"], **common)
