"""deploychecks 0006 binds the DigitalOcean and monitoring kinds on MINGUS versions imported
before them; runbooks already started keep the bindings they started with."""
import pytest
from django.core.management import call_command

from checklist.models import JobBinding, RunbookBinding

pytestmark = pytest.mark.django_db(transaction=True)

NEW = ["do-app", "do-deploy", "do-rollback", "do-upkeep", "do-alerts", "do-domain", "monitoring"]


def test_the_migration_binds_the_new_kinds_and_leaves_started_runbooks_alone(runbook, template):
    started_with = RunbookBinding.objects.filter(runbook=runbook).count()
    call_command("migrate", "deploychecks", "0005", verbosity=0)  # as before the kinds existed
    try:
        assert not JobBinding.objects.filter(item__group__phase__template=template,
                                             kind__in=NEW).exists()
    finally:
        call_command("migrate", "deploychecks", verbosity=0)
    bound = JobBinding.objects.filter(item__group__phase__template=template, kind__in=NEW)
    assert bound.count() == 22 and set(bound.values_list("kind", flat=True)) == set(NEW)
    assert bound.get(kind="do-rollback", item__text="Stop application deployment")
    assert RunbookBinding.objects.filter(runbook=runbook).count() == started_with
