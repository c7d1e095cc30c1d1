"""Every audit event that notifies is announced by the action that writes it: none goes without
its notification. The notifier is registered explicitly (checklist/announcements.py), so an
action that forgets to announce would write its event silently; this walks one runbook through
every notifying action and holds each such event to its Notification."""
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from checklist import actions, announcements, audit, runner
from checklist.models import AuditEvent, TaskRun
from deploychecks import notify
from deploychecks.models import Notification, RunbookCheckSettings
from tests.checklist.factories import complete_phase, gated, hand_states, sign_off_through

from .test_deploy_jobs import fake_validate

pytestmark = pytest.mark.django_db(transaction=True)

# What notifies: the audit actions the notifier titles, plus trigger firings and any change that
# withdrew sign-offs (an untick, "applicable again").
NOTIFYING = set(notify.AUDIT_EVENTS) | {"trigger-fired"}


def notifies(event):
    return event.action in NOTIFYING or bool((event.after or {}).get("withdrew"))


def lose_a_run(runbook, user):
    run = TaskRun.objects.create(runbook=runbook, kind="backup", started_by=user,
                                 state=TaskRun.RUNNING)
    TaskRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(days=1))
    assert runner.mark_lost_runs() == 1


def test_every_notifying_audit_event_has_its_notification(runbook, users, settings):
    settings.GO_LIVE_APPROVALS_REQUIRED = 1
    cs = RunbookCheckSettings.for_runbook(runbook)
    cs.notify_emails = "ops@example.com"
    cs.save()
    with override_settings(DEPLOYCHECKS_NOTIFY_INLINE=True):
        sign_off_through(runbook, 2, users["member"], users["lead"])
        fake_validate(runbook, users["member"], ok=False, mismatches=3, missing_rows=0,
                      rows_checked=90)  # job-failed, and the data-corruption trigger fires
        for phase in gated(runbook)[2:]:
            complete_phase(runbook, phase, users["member"])
            actions.sign_off(users["lead"], runbook, phase, "ok")
        actions.request_go_live(users["lead"], runbook, "ready")
        actions.approve_go_live(users["lead2"], runbook, "yes")
        lose_a_run(runbook, users["member"])
        first = next(st for st in hand_states(runbook, gated(runbook)[0]) if st.checked)
        actions.untick(users["member"], first, confirm=True, reason="redo the backup")

    events = [e for e in AuditEvent.objects.filter(runbook=runbook) if notifies(e)]
    assert {e.action for e in events} == NOTIFYING | {"untick"}  # the walk reached each kind
    seqs = {n.payload["data"].get("audit_seq") for n in Notification.objects.all()}
    missing = [f"#{e.seq} {e.action}" for e in events if e.seq not in seqs]
    assert not missing, f"notifying events without a notification: {missing}"
    withdrawn = Notification.objects.get(event="sign-off-withdrawn")
    assert "redo the backup" in withdrawn.payload["text"]


def test_an_event_written_without_announcing_notifies_nobody(runbook, users):
    """The other side: nothing listens to the audit log itself, so only an announced event
    notifies (which is why the test above holds every action to announcing)."""
    cs = RunbookCheckSettings.for_runbook(runbook)
    cs.notify_emails = "ops@example.com"
    cs.save()
    with override_settings(DEPLOYCHECKS_NOTIFY_INLINE=True):
        silent = audit.record("sign-off", actor=users["lead"], runbook=runbook,
                              after={"phase": "Pre-Deployment Phase"})
        assert not Notification.objects.exists()
        announcements.announce(silent)
    assert Notification.objects.get().payload["data"]["audit_seq"] == silent.seq
