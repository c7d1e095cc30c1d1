"""Stable keys: Item.key and Phase.key (found by key, never by text or position), and the gated
phase each rollback plan or success criteria opens with (Phase.opens_with).

Existing versions get the keys the importer gives today: from the keys files in
checklist/bindings/ (read as they stand when this migration runs), and the openers the phase
statuses used to compute from position.
"""
import json
from pathlib import Path

import django.db.models.deletion
from django.db import migrations, models

KEYS_DIR = Path(__file__).resolve().parent.parent / "bindings"


def fill(apps, schema_editor):
    Template = apps.get_model("checklist", "ChecklistTemplate")
    Phase = apps.get_model("checklist", "Phase")
    Item = apps.get_model("checklist", "Item")
    files = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(KEYS_DIR.glob("*-keys.json"))]
    for template in Template.objects.all():
        phases = list(Phase.objects.filter(template=template).order_by("order"))
        gated = [p for p in phases if p.kind == "gated"]
        for phase in phases:
            place = {"rollback": 1, "success": 2}.get(phase.kind)
            if place is not None and gated:
                phase.opens_with = gated[min(place, len(gated) - 1)]
                phase.save(update_fields=["opens_with"])
        for data in files:
            if data.get("template_title_contains", "\0") not in template.title:
                continue
            by_title = data.get("phases", {})
            for phase in phases:
                if phase.title in by_title:
                    phase.key = by_title[phase.title]
                    phase.save(update_fields=["key"])
            wanted = {(e.get("group"), e["text"]): e["key"] for e in data.get("items", [])}
            changed = []
            for item in Item.objects.filter(group__phase__template=template).select_related("group"):
                key = wanted.get((item.group.title, item.text)) or wanted.get((None, item.text))
                if key and not item.key:
                    item.key = key
                    changed.append(item)
            Item.objects.bulk_update(changed, ["key"])


class Migration(migrations.Migration):

    dependencies = [("checklist", "0007_runbook_bindings")]

    operations = [
        migrations.AddField(
            model_name="item", name="key",
            field=models.SlugField(blank=True, default="", max_length=100,
                                   help_text="stable key code and bindings find the item by")),
        migrations.AddField(
            model_name="phase", name="key",
            field=models.SlugField(blank=True, default="", max_length=100,
                                   help_text="stable key code finds the phase by")),
        migrations.AddField(
            model_name="phase", name="opens_with",
            field=models.ForeignKey(blank=True, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="opens", to="checklist.phase",
                                    help_text="rollback plan or success criteria: the gated phase "
                                              "whose opening opens it")),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
