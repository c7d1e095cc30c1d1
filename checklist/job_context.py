"""What a job handler gets and gives back: the JobContext (run, parameters, workdir, progress,
log, cancel check, the runbook's sources and target) and the JobResult it returns.

Handlers live with the app that owns them (migration/jobs.py, deploychecks/jobs.py,
deploychecks/proof_jobs.py, checklist/command_job.py); `checklist/runner.py` calls them and
records what they return.
"""
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from migration.redact import scrub
from migration.safe_files import UnsafeFile, resolve_under_roots

from . import changes
from .models import TaskRun
from .runbook_target import target_url

log = logging.getLogger(__name__)

LOG_LIMIT = 200_000  # characters of log kept on the run (the full log is also evidence)


class JobCancelled(Exception):
    pass


class JobInputError(Exception):
    """The job cannot start on what it was configured with; the message says why, in plain words."""


def app_private_files():
    """Files no job may ever read: the app's own SQLite database and its development key."""
    files = [Path(settings.VAR_DIR) / "dev_secret_key"]
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"] and str(db["NAME"]) not in ("", ":memory:"):
        files.append(Path(db["NAME"]))
    return files


def _safe(path, roots, what, must_exist=True):
    try:
        return resolve_under_roots(path, roots, forbidden=app_private_files(), what=what,
                                   must_exist=must_exist)
    except UnsafeFile as exc:
        raise JobInputError(str(exc)) from None


@dataclass
class JobResult:
    ok: bool
    summary: str = ""
    report: dict | None = None  # stored as the run's JSON report evidence
    artifacts: list = field(default_factory=list)  # paths of files to keep as evidence
    figures: dict = field(default_factory=dict)  # key figures: rows loaded, rejects, p95 ...
    error: str = ""  # plain words, shown to the user when ok is False
    # For kinds that earn their items one by one (success criteria, assess): item text -> passed.
    # Items left out are neither earned nor withdrawn. None: all bound items follow `ok`.
    item_outcomes: dict | None = None
    item_notes: dict = field(default_factory=dict)  # item text -> the note its earned tick gets


class JobContext:
    """What a handler gets: the run, its parameters, a workdir, and progress/log/cancel hooks."""

    def __init__(self, run, params, secrets=()):
        self.run = run
        self.runbook = run.runbook
        self.params = params
        self._secrets = [s for s in secrets if s]
        self._lines = []
        self._last_flush = 0.0
        self._progress = {}
        self._cancel = False
        self.workdir = Path(settings.JOB_WORKDIR) / f"runbook-{run.runbook_id}"
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # --- what handlers call ---------------------------------------------------------------
    def redact(self, text):
        return scrub(str(text), *self._secrets)

    def log(self, line):
        self._lines.append(f"{timezone.now():%H:%M:%S} {self.redact(line)}")
        self._maybe_flush()

    def progress(self, step=None, percent=None, rows=None, eta_seconds=None):
        for key, value in (("step", step), ("percent", percent), ("rows", rows),
                           ("eta_seconds", eta_seconds)):
            if value is not None:
                self._progress[key] = value
        self._maybe_flush()

    def should_cancel(self):
        self._maybe_flush()
        return self._cancel

    def check_cancel(self):
        if self.should_cancel():
            raise JobCancelled()

    def sources(self, must_exist=True):
        """The runbook's sources, each resolved and refused unless a regular file under
        SOURCE_ROOTS (never the app's own database); a rollback may restore a missing one."""
        return {s.name: _safe(s.path, settings.SOURCE_ROOTS, "source", must_exist)
                for s in self.runbook.sources.all()}

    def checked_file(self, path):
        """A file a check reads (env file, app spec), held to CHECK_FILE_ROOTS likewise."""
        return _safe(path, settings.CHECK_FILE_ROOTS, "checked file")

    def target_url(self):
        return target_url(self.runbook)

    # --- bookkeeping ------------------------------------------------------------------------
    def _maybe_flush(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_flush < settings.JOB_PROGRESS_INTERVAL:
            return
        self._last_flush = now
        fields = dict(self._progress, heartbeat_at=timezone.now(), log=self.log_text())
        TaskRun.objects.filter(pk=self.run.pk).update(**fields)
        changes.run_changed(self.run)
        self._cancel = TaskRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()

    def log_text(self):
        text = "\n".join(self._lines)
        return text[-LOG_LIMIT:]


def group_file(run):
    """Where a command job notes its process group while it runs (see checklist/lifeline.py)."""
    return Path(settings.JOB_WORKDIR) / f"runbook-{run.runbook_id}" / f"run-{run.pk}.pgid"
