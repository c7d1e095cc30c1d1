from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from checklist.models import ChecklistTemplate
from checklist.template_export import export_markdown


class Command(BaseCommand):
    help = "Write a template version as Markdown that re-imports to the same phases, groups, items and gating."

    def add_arguments(self, parser):
        parser.add_argument("template_id", type=int)
        parser.add_argument("--output", "-o", help="Write to this file (default: standard output)")

    def handle(self, template_id, output=None, **options):
        template = ChecklistTemplate.objects.filter(pk=template_id).first()
        if template is None:
            raise CommandError(f"No template with id {template_id}.", returncode=2)
        text = export_markdown(template)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {template} to {output}.")
        else:
            self.stdout.write(text, ending="")
