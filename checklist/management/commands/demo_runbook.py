"""For `make run`: a demo runbook on the MINGUS template, with copies of the fixture databases
as its sources (copies under var/, so the cleanup job may archive them without touching
../shared)."""
import shutil
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from checklist import actions
from checklist.models import ChecklistTemplate, Runbook

FIVE = ["mingus.db", "alerts.db", "business_intelligence.db", "cache.db", "performance_metrics.db"]


class Command(BaseCommand):
    help = "Start a demo runbook on the newest MINGUS template if there is none yet."

    def add_arguments(self, parser):
        parser.add_argument("--fixtures", help="Folder holding the MINGUS SQLite files")
        parser.add_argument("--target", help="Target PostgreSQL URL for the demo runbook")

    def handle(self, fixtures=None, target=None, **options):
        template = ChecklistTemplate.objects.filter(name="MINGUS").order_by("-version").first()
        if template is None or Runbook.objects.exists():
            return
        lead = get_user_model().objects.filter(groups__name="lead").order_by("pk").first()
        if lead is None:
            self.stderr.write("No lead user; run seed_demo first.")
            return
        runbook = actions.start_runbook(lead, template, "MINGUS production (demo)")
        if fixtures and Path(fixtures).is_dir():
            dest = Path(settings.SOURCE_ROOTS[0])  # jobs read sources only under SOURCE_ROOTS
            dest.mkdir(parents=True, exist_ok=True)
            sources = {}
            for name in FIVE:
                src = Path(fixtures) / name
                if src.exists():
                    shutil.copyfile(src, dest / name)
                    (dest / name).chmod(0o600)
                    sources[Path(name).stem] = str(dest / name)
            actions.set_sources(lead, runbook, sources)
        if target:
            actions.set_target(lead, runbook, target)
        self.stdout.write(f"Demo runbook {runbook.pk} started: {runbook.name}")
