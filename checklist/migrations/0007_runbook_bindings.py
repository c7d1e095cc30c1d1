"""Runbooks keep their own bindings: copy each existing runbook's template bindings onto it."""
import django.db.models.deletion
from django.db import migrations, models


def copy_bindings(apps, schema_editor):
    Runbook = apps.get_model("checklist", "Runbook")
    JobBinding = apps.get_model("checklist", "JobBinding")
    RunbookBinding = apps.get_model("checklist", "RunbookBinding")
    for runbook in Runbook.objects.all():
        RunbookBinding.objects.bulk_create([
            RunbookBinding(runbook=runbook, item_id=b.item_id, kind=b.kind, part=b.part)
            for b in JobBinding.objects.filter(item__group__phase__template_id=runbook.template_id)])


class Migration(migrations.Migration):

    dependencies = [("checklist", "0006_phase_gating_and_import_notes")]

    operations = [
        migrations.AddField(model_name="jobbinding", name="part",
                            field=models.CharField(blank=True, default="", max_length=50)),
        migrations.CreateModel(
            name="RunbookBinding",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("kind", models.CharField(max_length=50)),
                ("part", models.CharField(blank=True, default="", max_length=50)),
                ("item", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT,
                                           related_name="runbook_bindings", to="checklist.item")),
                ("runbook", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="bindings", to="checklist.runbook")),
            ],
            options={"constraints": [models.UniqueConstraint(
                fields=("runbook", "item", "kind"), name="runbookbinding_runbook_item_kind")]},
        ),
        migrations.RunPython(copy_bindings, migrations.RunPython.noop),
    ]
