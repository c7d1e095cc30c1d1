"""Notifications: email and webhook, on job failures, trigger firings, sign-offs and go-live,
plus a digest for leads.

`dispatch()` records one Notification row per channel (inside the caller's transaction) and,
once that commits, hands it to the `deploychecks.deliver_notification` task, so a sign-off never
waits on a slow webhook. Delivery is a bounded retry loop whose every attempt is recorded on the
row. With DEPLOYCHECKS_NOTIFY_INLINE the delivery runs in the committing process instead (no
worker needed; used by the tests that have no worker).

Payloads are built from redacted data and scrubbed again with every secret we know of (the
target's password, the webhook URL itself) before they are stored or sent.
"""
import base64
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from checks.redact import scrub, url_password

log = logging.getLogger(__name__)

# Audit actions that notify the runbook's recipients.
AUDIT_EVENTS = {
    "sign-off": "Phase signed off",
    "go-live-authorized": "Go-live authorized",
    "job-failed": "Job failed",
    "job-lost": "Job lost (worker stopped)",
}


def _setting(name, default):
    return getattr(settings, name, default)


# --- the webhook URL at rest ------------------------------------------------------------------

def _fernet():
    key = _setting("TARGET_URL_KEY", "")
    if not key:
        key = base64.urlsafe_b64encode(hashlib.sha256(
            b"mingus-deploy webhook url:" + settings.SECRET_KEY.encode()).digest())
    return Fernet(key)


def encrypt(text):
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token):
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        log.warning("webhook URL cannot be decrypted: SECRET_KEY or TARGET_URL_KEY changed")
        return ""


def redact_webhook(url):
    """scheme://host/… : webhook tokens live in the path or the query, so neither is shown."""
    parts = urlsplit(url or "")
    if not parts.scheme or not parts.hostname:
        return "***"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{hidden}"


def _secrets_of(runbook):
    """Every secret value a payload about this runbook could accidentally carry."""
    found = []
    if runbook is None:
        return found
    try:
        from checklist.targets import target_url

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


# --- dispatch ---------------------------------------------------------------------------------

def dispatch(event, runbook, subject, text, data=None, emails=None):
    """Record and queue notifications of `event` to the runbook's recipients.

    `emails` overrides the recipients (the digest goes to leads). Returns the Notification rows.
    """
    from .models import Notification, RunbookCheckSettings

    cs = RunbookCheckSettings.for_runbook(runbook) if runbook is not None else None
    recipients = emails if emails is not None else (cs.emails() if cs else [])
    payload = clean({
        "event": event,
        "runbook": {"id": runbook.pk, "name": runbook.name} if runbook is not None else None,
        "subject": subject,
        "text": text,
        "data": data or {},
        "at": timezone.now().isoformat(),
    }, runbook)
    rows = []
    if recipients:
        rows.append(Notification.objects.create(
            runbook=runbook, event=event, channel=Notification.EMAIL,
            recipients=", ".join(recipients), subject=payload["subject"][:300], payload=payload))
    if cs is not None and cs.webhook_url_encrypted and emails is None:
        rows.append(Notification.objects.create(
            runbook=runbook, event=event, channel=Notification.WEBHOOK,
            recipients=cs.webhook_url_redacted, subject=payload["subject"][:300],
            payload=payload))
    for row in rows:
        transaction.on_commit(lambda pk=row.pk: _queue(pk))
    return rows


def _queue(notification_id):
    if _setting("DEPLOYCHECKS_NOTIFY_INLINE", False):
        deliver(notification_id)
        return
    from .tasks import deliver_notification

    try:
        deliver_notification.apply_async(args=[notification_id], **follow_up_options())
    except Exception as exc:  # the broker is down: the row stays pending, visible in the admin
        log.warning("notification %s not queued: %s", notification_id, type(exc).__name__)


def follow_up_options():
    """Work queued from inside a task goes to the queue that task came from, so a worker
    listening on one queue also runs the follow-ups of its own jobs."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    queue = ((getattr(request, "delivery_info", None) or {}).get("routing_key")
             if current_task else None)
    return {"queue": queue} if queue else {}


# --- delivery ---------------------------------------------------------------------------------

class DeliveryError(Exception):
    pass


def deliver(notification_id):
    """Send one notification, retrying with backoff; every attempt is recorded on its row."""
    from .models import Notification

    note = Notification.objects.select_related("runbook").get(pk=notification_id)
    if note.state == Notification.SENT:
        return note
    attempts = int(_setting("DEPLOYCHECKS_NOTIFY_ATTEMPTS", 4))
    backoff = float(_setting("DEPLOYCHECKS_NOTIFY_BACKOFF_SECONDS", 0.5))
    send = _send_email if note.channel == Notification.EMAIL else _send_webhook
    for n in range(1, attempts + 1):
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
        note.save(update_fields=["attempts"])
        if n < attempts:
            time.sleep(min(backoff * 2 ** (n - 1), 30))  # retry backoff, not synchronisation
    note.state = Notification.FAILED
    note.save(update_fields=["state"])
    log.warning("notification %s (%s %s) failed after %d attempts", note.pk, note.channel,
                note.event, attempts)
    return note


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
    request = urllib.request.Request(
        url, data=json.dumps(note.payload).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mingus-deploy-notify/1"})
    timeout = float(_setting("DEPLOYCHECKS_WEBHOOK_TIMEOUT", 5))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        # The exception text can hold the URL: never keep it; the class is enough.
        raise DeliveryError(f"{type(exc).__name__}") from None


# --- what notifies ----------------------------------------------------------------------------

def on_audit_event(sender, instance, created, **kwargs):
    """post_save of checklist.AuditEvent: sign-offs, go-live and failed or lost jobs notify."""
    if not created or instance.action not in AUDIT_EVENTS or instance.runbook_id is None:
        return
    from checklist.models import Runbook

    runbook = Runbook.objects.filter(pk=instance.runbook_id).first()
    if runbook is None:
        return
    after = instance.after or {}
    title = AUDIT_EVENTS[instance.action]
    if instance.action.startswith("job-"):
        detail = f"{after.get('kind', '?')} run #{instance.object_id}: " \
                 f"{after.get('error') or after.get('summary') or ''}".strip()
    elif instance.action == "sign-off":
        detail = f"{after.get('phase') or instance.phase or 'a phase'} signed off by " \
                 f"{instance.actor_label}"
    else:
        detail = f"Go-live authorized ({instance.actor_label} gave the last approval)"
    dispatch(instance.action, runbook, f"{runbook.name}: {title}", detail,
             {"audit_seq": instance.seq, "actor": instance.actor_label, **{
                 k: after[k] for k in ("kind", "error", "summary", "phase", "approvals")
                 if k in after}})


def notify_firing(firing):
    """A rollback trigger fired: tell the runbook's recipients, once per firing."""
    runbook = firing.runbook
    rows = dispatch("trigger-fired", runbook, f"{runbook.name}: rollback trigger — {firing.title}",
                    f"{firing.summary}\n\nEvidence: {firing.evidence}\nThis is a trigger, not a "
                    "rollback: a lead decides whether to run the rollback job.",
                    {"trigger": firing.trigger, "figures": firing.figures,
                     "evidence": firing.evidence, "fired_at": firing.fired_at.isoformat()})
    return rows


def digest_text(runbooks):
    """A plain-text summary of each runbook's state: progress, open phase, failures, triggers."""
    from datetime import timedelta

    from checklist import rules
    from checklist.models import TaskRun

    from .models import TriggerFiring

    since = timezone.now() - timedelta(hours=24)
    lines, data = [], []
    for runbook in runbooks:
        facts = rules.RunbookFacts.load(runbook)
        block = rules.status_block(facts)
        phase = rules.current_phase(facts)
        failed = list(TaskRun.objects.filter(runbook=runbook, state__in=["failed", "lost"],
                                             finished_at__gte=since)
                      .values_list("kind", "pk", "state"))
        firing = list(TriggerFiring.objects.filter(runbook=runbook, cleared_at__isnull=True)
                      .values_list("title", flat=True))
        lines.append(f"{runbook.name} (#{runbook.pk}): {block.done}/{block.total} items "
                     f"({block.percent}%), open phase: {phase.title if phase else 'none'}, "
                     f"go-live: {block.go_live_state}")
        for kind, pk, state in failed:
            lines.append(f"  - {kind} run #{pk} {state} in the last 24 h")
        for title in firing:
            lines.append(f"  - ROLLBACK TRIGGER FIRING: {title}")
        data.append({"id": runbook.pk, "name": runbook.name, "done": block.done,
                     "total": block.total, "open_phase": phase.title if phase else None,
                     "failures": [{"kind": k, "run": p, "state": s} for k, p, s in failed],
                     "firing": firing})
    return "\n".join(lines) or "No runbooks.", data


def send_digest():
    """Email the digest to every lead with an address; returns the Notification (or None)."""
    from django.contrib.auth.models import User

    from checklist.models import Runbook

    leads = sorted({u.email for u in User.objects.filter(groups__name="lead", is_active=True)
                    if u.email})
    if not leads:
        return None
    text, data = digest_text(Runbook.objects.order_by("pk"))
    rows = dispatch("digest", None, "Daily runbook digest", text, {"runbooks": data},
                    emails=leads)
    if not rows:
        return None
    rows[0].refresh_from_db()
    return rows[0]
