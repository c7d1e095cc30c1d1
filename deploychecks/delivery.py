"""Delivering one notification: email through Django's mail backend, webhook through the
project's HTTP request helper (checks/http_request.py). One call of `attempt()` is one try,
recorded on the Notification row; the `deploychecks.deliver_notification` task retries it with
Celery's backoff until it is sent or DEPLOYCHECKS_NOTIFY_ATTEMPTS tries have failed.
"""
import json
import logging
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from checklist.runbook_target import target_url
from checks import http_request
from checks.redact import scrub, url_password

from .models import Notification

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """This try failed; the task retries it (with backoff) while tries remain."""


def _setting(name, default):
    return getattr(settings, name, default)


def _secrets_of(runbook):
    """Every secret value a payload about this runbook could accidentally carry."""
    found = []
    if runbook is None:
        return found
    try:
        if hasattr(runbook, "target"):
            url = target_url(runbook)
            found += [url_password(url), url]
    except Exception:  # an undecryptable target has nothing to leak
        pass
    cs = getattr(runbook, "check_settings", None)
    if cs is not None and cs.webhook_url_encrypted:
        hook = cs.webhook_url()
        parts = urlsplit(hook)
        found += [hook, parts.path if len(parts.path) > 8 else "", parts.query]
    return [s for s in found if s]


def clean(data, runbook=None):
    """`data` (JSON-able) with every URL password and known secret masked."""
    text = scrub(json.dumps(data, default=str), *_secrets_of(runbook))
    return json.loads(text)


def attempt(notification_id):
    """Try to send one notification once and record the try on its row. Raises DeliveryError
    when it failed and tries remain; after the last failed try the row is marked failed."""
    note = Notification.objects.select_related("runbook").get(pk=notification_id)
    if note.state != Notification.PENDING:
        return note
    attempts = int(_setting("DEPLOYCHECKS_NOTIFY_ATTEMPTS", 4))
    n = len(note.attempts) + 1
    send = _send_email if note.channel == Notification.EMAIL else _send_webhook
    started = time.perf_counter()
    try:
        status = send(note)
        ok, error = True, ""
    except DeliveryError as exc:
        status, ok, error = None, False, str(exc)
    note.attempts = [*note.attempts, {
        "n": n, "at": timezone.now().isoformat(), "ok": ok, "status": status,
        "error": scrub(error, *_secrets_of(note.runbook))[:300],
        "ms": round((time.perf_counter() - started) * 1000, 1)}]
    if ok:
        note.state, note.sent_at = Notification.SENT, timezone.now()
        note.save(update_fields=["attempts", "state", "sent_at"])
        return note
    if n < attempts:
        note.save(update_fields=["attempts"])
        raise DeliveryError(error)
    note.state = Notification.FAILED
    note.save(update_fields=["attempts", "state"])
    log.warning("notification %s (%s %s) failed after %d attempts", note.pk, note.channel,
                note.event, n)
    return note


def deliver_now(notification_id):
    """Every try in this process, one after the other (DEPLOYCHECKS_NOTIFY_INLINE: no worker,
    so no backoff either); returns the row."""
    while True:
        try:
            return attempt(notification_id)
        except DeliveryError:
            continue


def _send_email(note):
    body = note.payload.get("text", "")
    data = note.payload.get("data") or {}
    if data:
        body += "\n\n" + json.dumps(data, indent=2, default=str)
    try:
        send_mail(f"[mingus-deploy] {note.subject}", body,
                  _setting("DEPLOYCHECKS_FROM_EMAIL", settings.DEFAULT_FROM_EMAIL),
                  [a.strip() for a in note.recipients.split(",") if a.strip()])
    except Exception as exc:  # SMTP refused, connection failed: retried, then recorded
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    return 250


def _send_webhook(note):
    url = note.runbook.check_settings.webhook_url() if note.runbook else ""
    if not url:
        raise DeliveryError("no webhook URL configured (or it cannot be decrypted)")
    try:
        answer = http_request.request(
            url, "POST", content=json.dumps(note.payload).encode(),
            headers={"Content-Type": "application/json"}, max_body=65536,
            timeout=float(_setting("DEPLOYCHECKS_WEBHOOK_TIMEOUT", 5)),
            user_agent="mingus-deploy-notify/1")
    except http_request.RequestFailed as exc:
        # Only the failure's class: an error's text could hold the URL, which is a secret.
        raise DeliveryError(exc.kind) from None
    if not 200 <= answer.status < 300:
        raise DeliveryError(f"HTTP {answer.status}")
    return answer.status
