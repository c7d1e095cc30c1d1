"""The writes of the deployment checks app, each with its audit event (checklist/actions.py holds
the checklist's own): the lead's proof settings."""
from django.utils import timezone

from checklist import audit, rules
from checklist.actions import atomic_action, lock_runbook, require

from .models import RunbookProofSettings


@atomic_action
def save_proof_settings(user, runbook, values, do_token="", clear_do_token=False):
    """Save a runbook's proof settings from already validated `values` (fields of
    RunbookProofSettings.FIELDS only): under the runbook's lock, a lead's (or admin's) to change,
    audited before and after with the DigitalOcean token only redacted. An empty `do_token` keeps
    the stored one; `clear_do_token` removes it. The row is made here on the first save."""
    runbook = lock_runbook(runbook.pk)
    require(rules.can_configure(user), user, "proof-settings", obj=runbook, runbook=runbook)
    unknown = set(values) - set(RunbookProofSettings.FIELDS)
    if unknown:
        raise ValueError(f"not proof settings: {', '.join(sorted(unknown))}")
    ps = (RunbookProofSettings.objects.select_for_update().filter(runbook=runbook).first()
          or RunbookProofSettings(runbook=runbook))
    before = ps.snapshot()  # the defaults, before the first save
    for field, value in values.items():
        setattr(ps, field, value)
    if clear_do_token:
        ps.set_do_token("")
    elif do_token:
        ps.set_do_token(do_token)
    ps.updated_at = timezone.now()
    ps.save()
    audit.record("proof-settings", actor=user, obj=ps, runbook=runbook, before=before,
                 after=ps.snapshot())
    return ps
