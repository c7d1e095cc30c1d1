import pytest

from checklist import actions, rules
from checklist.models import AuditEvent, SignOff

from .factories import gated, sign_off_through, hand_states, states_of

pytestmark = pytest.mark.django_db


def test_untick_withdraws_that_sign_off_and_every_later_one(runbook, users):
    sign_off_through(runbook, 3, users["member"], users["lead"])
    first = gated(runbook)[0]
    st = hand_states(runbook, first)[0]
    with pytest.raises(actions.Refused) as refused:
        actions.untick(users["member"], st, "backup was corrupt")
    assert refused.value.status == 409
    assert [w.split(" by ")[0] for w in refused.value.decision.withdraws] == [
        f"the sign-off of {p.title}" for p in gated(runbook)[:3]]
    assert SignOff.objects.filter(runbook=runbook, withdrawn_at__isnull=True).count() == 3
    with pytest.raises(actions.Refused) as refused:
        actions.untick(users["member"], st, confirm=True, reason="  ")
    assert refused.value.status == 400 and "Say why" in str(refused.value)
    actions.untick(users["member"], st, "backup was corrupt", confirm=True,
                   reason="the backup was corrupt")

    standing = SignOff.objects.filter(runbook=runbook, withdrawn_at__isnull=True)
    assert standing.count() == 0
    assert SignOff.objects.filter(runbook=runbook).count() == 3
    withdrawn = AuditEvent.objects.filter(runbook=runbook, action="sign-off-withdrawn")
    assert withdrawn.count() == 3
    assert "member unticked" in withdrawn.first().after["reason"]
    assert "the backup was corrupt" in withdrawn.first().after["reason"]
    untick = AuditEvent.objects.get(runbook=runbook, action="untick")
    assert untick.after["reason"] == "the backup was corrupt"
    assert len(untick.after["withdrew"]) == 3
    facts = rules.RunbookFacts.load(runbook)
    assert [facts.status(p).state for p in facts.gated] == ["open", "locked", "locked", "locked"]


def test_untick_in_a_later_phase_keeps_earlier_sign_offs(runbook, users):
    sign_off_through(runbook, 2, users["member"], users["lead"])
    second = gated(runbook)[1]
    actions.untick(users["member"], hand_states(runbook, second)[0], confirm=True,
                   reason="redo the copy")
    standing = SignOff.objects.filter(runbook=runbook, withdrawn_at__isnull=True)
    assert [s.phase for s in standing] == [gated(runbook)[0]]


def test_sign_off_keeps_the_comment_and_lead(runbook, users):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    so = SignOff.objects.get(runbook=runbook)
    assert so.lead == users["lead"] and so.comment == "ok"
    event = AuditEvent.objects.filter(action="sign-off").last()
    assert event.actor == users["lead"] and event.phase_id == so.phase_id


def test_a_phase_cannot_be_signed_off_twice(runbook, users):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    with pytest.raises(actions.Refused) as exc:
        actions.sign_off(users["lead2"], runbook, gated(runbook)[0])
    assert "already signed off" in str(exc.value)


def test_a_confirmed_withdrawal_notifies_the_leads_with_the_reason(
        runbook, users, settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.DEPLOYCHECKS_NOTIFY_INLINE = True
    users["lead"].email, users["lead2"].email = "lead@example.org", "lead2@example.org"
    users["lead"].save(), users["lead2"].save()
    sign_off_through(runbook, 2, users["member"], users["lead"])
    st = hand_states(runbook, gated(runbook)[1])[0]
    with django_capture_on_commit_callbacks(execute=True):
        actions.untick(users["member"], st, confirm=True, reason="row counts differ")
    to_leads = [m for m in mailoutbox if set(m.to) == {"lead@example.org", "lead2@example.org"}]
    assert len(to_leads) == 1, [m.to for m in mailoutbox]
    body = to_leads[0].body
    assert "member unticked" in body and "row counts differ" in body
    assert f"the sign-off of {gated(runbook)[1].title} by lead" in body
    assert f"the sign-off of {gated(runbook)[0].title}" not in body  # earlier phases stand
