"""The writes of the deployment checks app, each with its audit event (checklist/actions.py holds
the checklist's own): the lead's proof settings."""
from checklist.actions import atomic_action, save_runbook_settings

from .models import RunbookProofSettings


@atomic_action
def save_proof_settings(user, runbook, values, do_token="", clear_do_token=False):
    """A runbook's proof settings, saved as checklist.actions.save_runbook_settings says; the
    DigitalOcean token is their secret (an empty `do_token` keeps it, `clear_do_token` removes it)."""
    return save_runbook_settings(user, runbook, RunbookProofSettings, "proof-settings", values,
                                 RunbookProofSettings.set_do_token, do_token, clear_do_token)
