import pytest

from checklist import actions, rules
from checklist.models import AuditEvent, SignOff

from .factories import gated, sign_off_through, hand_states, states_of

pytestmark = pytest.mark.django_db


def test_untick_withdraws_that_sign_off_and_every_later_one(runbook, users):
    sign_off_through(runbook, 3, users["member"], users["lead"])
    first = gated(runbook)[0]
    st = hand_states(runbook, first)[0]
    actions.untick(users["member"], st, "backup was corrupt")

    standing = SignOff.objects.filter(runbook=runbook, withdrawn_at__isnull=True)
    assert standing.count() == 0
    assert SignOff.objects.filter(runbook=runbook).count() == 3
    withdrawn = AuditEvent.objects.filter(runbook=runbook, action="sign-off-withdrawn")
    assert withdrawn.count() == 3
    assert "Item unticked" in withdrawn.first().after["reason"]
    facts = rules.RunbookFacts.load(runbook)
    assert [facts.status(p).state for p in facts.gated] == ["open", "locked", "locked", "locked"]


def test_untick_in_a_later_phase_keeps_earlier_sign_offs(runbook, users):
    sign_off_through(runbook, 2, users["member"], users["lead"])
    second = gated(runbook)[1]
    actions.untick(users["member"], hand_states(runbook, second)[0])
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
