"""Notifications: email and webhook, on job failures, trigger firings, sign-offs and go-live,
plus a digest for leads.

`dispatch()` records one Notification row per channel (inside the caller's transaction) and,
once that commits, queues the `deploychecks.deliver_notification` task, so a sign-off never
waits on a slow webhook. Delivery (deploychecks/delivery.py) is one attempt per task run,
recorded on the row; the task retries with Celery's exponential backoff up to
DEPLOYCHECKS_NOTIFY_ATTEMPTS. With DEPLOYCHECKS_NOTIFY_INLINE the attempts run in the committing
process instead, one after the other (no worker needed; used by the tests that have no worker).

Payloads are built from redacted data and scrubbed again with every secret we know of (the
target's password, the webhook URL itself) before they are stored or sent.
"""
import logging
from datetime import timedelta

from celery import current_app, current_task
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from checklist import rules
from checklist.models import Runbook, TaskRun

from . import delivery
from .models import Notification, RunbookCheckSettings, TriggerFiring

log = logging.getLogger(__name__)

# Audit actions that notify the runbook's recipients.
AUDIT_EVENTS = {
    "sign-off": "Phase signed off",
    "go-live-authorized": "Go-live authorized",
    "job-failed": "Job failed",
    "job-lost": "Job lost (worker stopped)",
}


DELIVER_TASK = "deploychecks.deliver_notification"


def _setting(name, default):
    return getattr(settings, name, default)


# --- dispatch ---------------------------------------------------------------------------------

def dispatch(event, runbook, subject, text, data=None, emails=None, now=False):
    """Record and queue notifications of `event` to the runbook's recipients.

    `emails` overrides the recipients (the digest goes to leads). With `now`, each is delivered
    here and then (the monitoring job proves the alert path with what was delivered). Returns the
    Notification rows.
    """
    cs = RunbookCheckSettings.for_runbook(runbook) if runbook is not None else None
    recipients = emails if emails is not None else (cs.emails() if cs else [])
    payload = delivery.clean({
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
    if now:
        return [delivery.deliver_now(row.pk) for row in rows]
    for row in rows:
        transaction.on_commit(lambda pk=row.pk: _queue(pk))
    return rows


def _queue(notification_id):
    if _setting("DEPLOYCHECKS_NOTIFY_INLINE", False):
        delivery.deliver_now(notification_id)
        return
    try:
        # By the task's name: deploychecks/tasks.py imports this module (the digest), so this
        # one does not import it back.
        current_app.send_task(DELIVER_TASK, args=[notification_id], **follow_up_options())
    except Exception as exc:  # the broker is down: the row stays pending, visible in the admin
        log.warning("notification %s not queued: %s", notification_id, type(exc).__name__)


def follow_up_options():
    """Work queued from inside a task goes to the queue that task came from, so a worker
    listening on one queue also runs the follow-ups of its own jobs."""
    request = getattr(current_task, "request", None)
    queue = ((getattr(request, "delivery_info", None) or {}).get("routing_key")
             if current_task else None)
    return {"queue": queue} if queue else {}


# --- what notifies ----------------------------------------------------------------------------

def notify_audit_event(event):
    """An announced audit event (checklist/announcements.py): a sign-off, go-live authorized or
    a failed or lost job notifies the runbook's recipients; a change that withdrew sign-offs
    notifies them and every lead. Returns the Notification rows."""
    if event.runbook_id is None:
        return []
    if (event.after or {}).get("withdrew"):
        return notify_withdrawal(event)
    if event.action not in AUDIT_EVENTS:
        return []
    runbook = Runbook.objects.filter(pk=event.runbook_id).first()
    if runbook is None:
        return []
    after = event.after or {}
    title = AUDIT_EVENTS[event.action]
    if event.action.startswith("job-"):
        detail = f"{after.get('kind', '?')} run #{event.object_id}: " \
                 f"{after.get('error') or after.get('summary') or ''}".strip()
    elif event.action == "sign-off":
        detail = f"{after.get('phase') or event.phase or 'a phase'} signed off by " \
                 f"{event.actor_label}"
    else:
        detail = f"Go-live authorized ({event.actor_label} gave the last approval)"
    return dispatch(event.action, runbook, f"{runbook.name}: {title}", detail,
                    {"audit_seq": event.seq, "actor": event.actor_label, **{
                        k: after[k] for k in ("kind", "error", "summary", "phase", "approvals")
                        if k in after}})


def notify_withdrawal(event):
    """Someone confirmed a change (an untick) that withdrew sign-offs or a go-live request: tell
    the runbook's recipients and every lead, with the reason they gave."""
    runbook = Runbook.objects.filter(pk=event.runbook_id).first()
    if runbook is None:
        return []
    after = event.after or {}
    text = (f"{event.actor_label} {'unticked' if event.action == 'untick' else 'changed'} "
            f"“{event.item.text if event.item_id else '?'}”, which withdrew "
            + "; ".join(after["withdrew"]) + f".\n\nReason: {after.get('reason') or '(none)'}")
    subject = f"{runbook.name}: sign-off withdrawn"
    data = {"audit_seq": event.seq, "actor": event.actor_label, "withdrew": after["withdrew"],
            "reason": after.get("reason", "")}
    rows = dispatch("sign-off-withdrawn", runbook, subject, text, data)
    leads = sorted({u.email for u in User.objects.filter(groups__name="lead", is_active=True)
                    if u.email})
    if leads:
        rows += dispatch("sign-off-withdrawn", runbook, subject, text, data, emails=leads)
    return rows


def notify_firing(firing, event):
    """A rollback trigger fired (its audit event `event`): tell the runbook's recipients, once
    per firing."""
    runbook = firing.runbook
    rows = dispatch("trigger-fired", runbook, f"{runbook.name}: rollback trigger — {firing.title}",
                    f"{firing.summary}\n\nEvidence: {firing.evidence}\nThis is a trigger, not a "
                    "rollback: a lead decides whether to run the rollback job.",
                    {"audit_seq": event.seq, "trigger": firing.trigger, "figures": firing.figures,
                     "evidence": firing.evidence, "fired_at": firing.fired_at.isoformat()})
    return rows


def notify_database_down(runbook, sample):
    """The monitor's database sample failed after a good one: tell the runbook's recipients."""
    return dispatch("database-unreachable", runbook,
                    f"{runbook.name}: the target database is unreachable",
                    f"The monitor could not reach the target database: {sample.detail}\n"
                    f"Sampled at {sample.taken_at.isoformat()}.",
                    {"kind": sample.kind, "detail": sample.detail,
                     "taken_at": sample.taken_at.isoformat()})


def digest_text(runbooks):
    """A plain-text summary of each runbook's state: progress, open phase, failures, triggers."""
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
