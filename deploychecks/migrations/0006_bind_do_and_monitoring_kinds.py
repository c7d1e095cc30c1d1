"""Bind the DigitalOcean and monitoring job kinds (issue 14) on MINGUS checklist versions imported
before they existed; versions imported from now on get them from checklist/bindings/.

Every existing MINGUS version is bound, runbooks started or not: a runbook keeps the bindings it
started with (RunbookBinding, checklist 0007), so a running runbook is not changed and only
runbooks started later earn these items by job. Only kinds that did not exist before are added,
so no binding a lead removed comes back. The bindings are written out here (frozen), not read
from the bindings file, which may change after this migration.

Reversible: the reverse removes these kinds' bindings from the versions (runbooks that copied
them keep their copies, as they would after a lead's unbinding).
"""
from django.db import migrations

TITLE = "MINGUS Production Deployment Checklist"
BINDINGS = {
    "do-app": ["Environment variables configured in DO", "App instance size selected (Basic/Pro)"],
    "do-deploy": ["Digital Ocean App Platform deployment triggered", "Deployment logs monitored"],
    "do-rollback": ["Stop application deployment", "Revert to previous database configuration",
                    "Update application configuration"],
    "do-upkeep": ["Automated backup schedule configured", "Database maintenance tasks scheduled"],
    "do-alerts": ["Disk space and memory alerts", "Monitoring enabled"],
    "do-domain": ["Custom domain configured (if applicable)", "SSL certificates configured"],
    "monitoring": ["Application health checks configured", "Uptime monitoring active",
                   "Connection pool monitoring active", "Performance metrics tracking",
                   "Error rate monitoring configured", "Error logging and alerting enabled",
                   "Database connection failure alerts", "High query response time alerts",
                   "Application error rate alerts"],
}


def bind(apps, schema_editor):
    Item = apps.get_model("checklist", "Item")
    JobBinding = apps.get_model("checklist", "JobBinding")
    made = []
    for kind, texts in BINDINGS.items():
        items = Item.objects.filter(group__phase__template__title__contains=TITLE,
                                    text__in=texts)
        made += [JobBinding(item=item, kind=kind) for item in items]
    JobBinding.objects.bulk_create(made, ignore_conflicts=True)


def unbind(apps, schema_editor):
    JobBinding = apps.get_model("checklist", "JobBinding")
    JobBinding.objects.filter(kind__in=list(BINDINGS),
                              item__group__phase__template__title__contains=TITLE).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("deploychecks", "0005_proof_token_not_editable"),
        ("checklist", "0007_runbook_bindings"),
    ]

    operations = [migrations.RunPython(bind, unbind)]
