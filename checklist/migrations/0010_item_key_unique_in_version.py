"""Item keys unique within their template version, held by the database: Item.template (the
version, written beside the group's) and a unique constraint on (template, key) for keys that are
set. Existing items get their version from their group's phase.

Keys were kept unique by code until now; should two items of a version share a key anyway (a
write that went around the code), the migration stops and names them instead of choosing which
key to drop: nothing is lost, and a lead fixes one of them with POST /api/items/<id>/key/ (or
the version's page) before migrating again.
"""
import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery


def fill_template(apps, schema_editor):
    Item = apps.get_model("checklist", "Item")
    Group = apps.get_model("checklist", "Group")
    Item.objects.filter(template__isnull=True).update(template_id=Subquery(
        Group.objects.filter(pk=OuterRef("group_id")).values("phase__template_id")[:1]))
    shared = (Item.objects.exclude(key="").values("template_id", "key")
              .annotate(n=Count("pk")).filter(n__gt=1))
    if shared:
        named = "; ".join(
            f"template version {row['template_id']}: key '{row['key']}' on items "
            + ", ".join(str(pk) for pk in Item.objects.filter(
                template_id=row["template_id"], key=row["key"]).values_list("pk", flat=True))
            for row in shared)
        raise RuntimeError(f"Item keys must be unique within a template version; these are not "
                           f"({named}). Change one key of each pair, then migrate again.")


class Migration(migrations.Migration):

    dependencies = [("checklist", "0009_runbook_change")]

    operations = [
        migrations.AddField(
            model_name="item", name="template",
            field=models.ForeignKey(null=True, editable=False,
                                    on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+", to="checklist.checklisttemplate")),
        migrations.RunPython(fill_template, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="item", name="template",
            field=models.ForeignKey(editable=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+", to="checklist.checklisttemplate")),
        migrations.AddConstraint(
            model_name="item",
            constraint=models.UniqueConstraint(condition=~models.Q(key=""),
                                               fields=("template", "key"),
                                               name="item_key_unique_in_version")),
    ]
