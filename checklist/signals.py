"""Logins, logouts and failed logins go into the audit log."""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import audit


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit.record("login", actor=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit.record("logout", actor=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    # Only the username: never the password Django passes along (it is already masked, but the
    # audit log has no use for it either way).
    username = str(credentials.get("username", ""))[:150]
    audit.record("login-failed", actor_label=username or "anonymous", after={"username": username})
