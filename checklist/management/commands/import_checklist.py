import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from checklist.actions import import_template
from checklist.importer import ChecklistParseError
from migration.safe_files import UnsafeFile, read_bytes


class Command(BaseCommand):
    help = "Import a Markdown deployment checklist as a versioned template."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--name", help="Template name (default: the checklist's title)")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON")

    def handle(self, path, name=None, json=False, **options):
        try:
            # A regular file of bounded size only: a FIFO would hang the import, a device never end.
            raw = read_bytes(path, settings.CHECKLIST_MAX_BYTES, "checklist")
        except UnsafeFile as exc:
            raise CommandError(f"Cannot read {exc}", returncode=2)
        try:
            template, created = import_template(raw, name=name)
        except ChecklistParseError as exc:
            raise CommandError(f"{path}: {exc}", returncode=2)
        phases = list(template.phases.prefetch_related("groups__items"))
        summary = {
            "id": template.pk,
            "name": template.name,
            "version": template.version,
            "sha256": template.sha256,
            "created": created,
            "phases": [
                {"title": p.title, "kind": p.kind, "gated": p.kind == "gated",
                 "why": p.gating_reason, "groups": p.groups.count(),
                 "items": sum(g.items.count() for g in p.groups.all())}
                for p in phases
            ],
            "contacts": template.contact_fields.count(),
            "notes": template.import_notes,
        }
        summary["items"] = sum(p["items"] for p in summary["phases"])
        if json:
            self.stdout.write(_json(summary))
            return
        verb = "Imported" if created else "Already imported (same text)"
        self.stdout.write(f"{verb}: template {template.pk} '{template.name}' v{template.version}")
        for p in summary["phases"]:
            gating = "gated" if p["gated"] else "not gated"
            self.stdout.write(f"  {p['title']} ({p['kind']}): {p['groups']} groups, "
                              f"{p['items']} items; {gating}: {p['why']}")
        self.stdout.write(f"  {summary['items']} items, {summary['contacts']} contact fields")
        for note in summary["notes"]:
            self.stdout.write(f"  note, line {note['line']}: {note['message']}")


def _json(data):
    return json.dumps(data, indent=2, ensure_ascii=False)
