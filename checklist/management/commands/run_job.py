"""Queue a job exactly as the Run button does; a worker runs it. --wait follows it to the end."""
import json
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from checklist.actions import Refused
from checklist.job_actions import start_job
from checklist.models import Runbook, TaskRun


class Command(BaseCommand):
    help = "Queue a job on a runbook (a worker must pick it up); --wait prints its outcome."

    def add_arguments(self, parser):
        parser.add_argument("runbook_id", type=int)
        parser.add_argument("job_kind")
        parser.add_argument("--param", action="append", default=[], metavar="K=V")
        parser.add_argument("--user", help="Who starts it (default: the first admin)")
        parser.add_argument("--wait", action="store_true", help="Wait for the run to end")
        parser.add_argument("--timeout", type=float, default=4 * 3600, help="Seconds to wait")
        parser.add_argument("--json", action="store_true")

    def handle(self, runbook_id, job_kind, param, user=None, wait=False, timeout=0, json=False,
               **options):
        runbook = Runbook.objects.filter(pk=runbook_id).first()
        if runbook is None:
            raise CommandError(f"No runbook with id {runbook_id}.", returncode=2)
        params = {}
        for pair in param:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(f"--param wants K=V, got '{pair}'.", returncode=2)
            params[key] = value
        User = get_user_model()
        actor = (User.objects.filter(username=user).first() if user else
                 User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first())
        if actor is None:
            raise CommandError(f"No user '{user}'." if user else "No admin user; pass --user.",
                               returncode=2)
        try:
            run = start_job(actor, runbook, job_kind, params)
        except Refused as refused:
            raise CommandError(str(refused), returncode=2 if refused.status == 400 else 1)
        if not wait:
            self._print(run, json)
            return
        deadline = time.monotonic() + timeout
        last = None
        while True:
            run.refresh_from_db()
            if not run.active:
                break
            if run.stale:  # marking it lost is the beat task's job; waiting on is pointless
                raise CommandError(f"Run #{run.pk} is stale: no heartbeat for over "
                                   f"{settings.JOB_LOST_AFTER_SECONDS:g}s (its worker stopped?).",
                                   returncode=1)
            if not json and (run.step, run.percent) != last:
                last = (run.step, run.percent)
                pct = f"{run.percent:.0f}%" if run.percent is not None else ""
                self.stderr.write(f"  {run.state} {run.step} {pct}".rstrip())
            if time.monotonic() > deadline:
                raise CommandError(f"Run #{run.pk} still {run.state} after {timeout:.0f}s.",
                                   returncode=1)
            time.sleep(0.5)  # polling the run's row; the worker is another process
        self._print(run, json)
        if run.state != TaskRun.SUCCEEDED:
            sys.exit(1)

    def _print(self, run, as_json):
        from checklist.api import run_document

        doc = run_document(run)
        if as_json:
            self.stdout.write(json.dumps(doc, indent=2))
            return
        self.stdout.write(f"Run #{run.pk} {run.kind}: {run.state}")
        if run.error:
            self.stdout.write(f"  error: {run.error}")
        for ev in doc["evidence"]:
            if ev["sha256"]:
                self.stdout.write(f"  {ev['name']}  sha256 {ev['sha256']}")
