"""Audit events people are told about, and who tells them: the hooks the apps register.

The actions that write such an event call `announce(event)` right after `audit.record`, inside
the same transaction: a sign-off, a go-live authorization, a confirmed change that withdrew
sign-offs (an untick, "applicable again"), a job that failed or was lost
(`checklist/runner.py`). Each registered hook gets the event and does what its app does with it.
deploychecks registers its notifier (`deploychecks/notify.py` `notify_audit_event`) in its
AppConfig.ready(), as it registers its job kinds and its run-end step; this app names no notifier
and nothing listens to model saves, so what follows an action can be read in the action.
"""

# hook(event), in registration order; filled by the apps' AppConfig.ready() through on_announce().
HOOKS = []


def on_announce(hook):
    """Have `hook(event)` called for every announced audit event."""
    if hook not in HOOKS:
        HOOKS.append(hook)
    return hook


def announce(event):
    """Hand an announced audit event to every registered hook; returns the event."""
    for hook in HOOKS:
        hook(event)
    return event
