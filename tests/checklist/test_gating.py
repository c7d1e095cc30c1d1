import pytest

from checklist import actions, rules
from checklist.models import ItemState, Phase

from .factories import complete_phase, gated, sign_off_through, hand_states, override_bound, states_of

pytestmark = pytest.mark.django_db


def test_only_the_first_phase_is_open_at_start(runbook):
    facts = rules.RunbookFacts.load(runbook)
    states = [facts.status(p).state for p in facts.gated]
    assert states == ["open", "locked", "locked", "locked"]
    assert facts.status(facts.gated[1]).reason == (
        "Migration opens when Pre-Deployment is complete and signed off."
    )


def test_tick_in_a_locked_phase_is_refused_with_the_reason(runbook, users):
    st = hand_states(runbook, gated(runbook)[1])[0]
    with pytest.raises(actions.Refused) as exc:
        actions.tick(users["member"], st)
    assert exc.value.status == 409
    assert "Migration opens when Pre-Deployment is complete and signed off" in str(exc.value)
    st.refresh_from_db()
    assert not st.checked


def test_complete_but_unsigned_phase_keeps_the_next_locked(runbook, users):
    first, second = gated(runbook)[:2]
    complete_phase(runbook, first, users["member"])
    facts = rules.RunbookFacts.load(runbook)
    assert facts.status(first).state == "complete"
    assert facts.status(second).state == "locked"


def test_sign_off_opens_the_next_phase(runbook, users):
    first, second = gated(runbook)[:2]
    complete_phase(runbook, first, users["member"])
    actions.sign_off(users["lead"], runbook, first, "all backed up")
    facts = rules.RunbookFacts.load(runbook)
    assert facts.status(first).state == "signed-off"
    assert facts.status(second).state == "open"
    actions.tick(users["member"], hand_states(runbook, second)[0])


def test_sign_off_of_an_incomplete_phase_is_refused(runbook, users):
    first = gated(runbook)[0]
    with pytest.raises(actions.Refused) as exc:
        actions.sign_off(users["lead"], runbook, first)
    assert "32 item(s) still open" in str(exc.value)


def test_rollback_plan_opens_with_migration_and_success_criteria_with_deployment(runbook, users):
    rollback = Phase.objects.get(template=runbook.template, kind=Phase.ROLLBACK)
    success = Phase.objects.get(template=runbook.template, kind=Phase.SUCCESS)
    facts = rules.RunbookFacts.load(runbook)
    assert facts.status(rollback).state == "locked"
    assert facts.status(success).state == "locked"
    assert "opens when the Migration Phase opens" in facts.status(rollback).reason

    sign_off_through(runbook, 1, users["member"], users["lead"])
    facts = rules.RunbookFacts.load(runbook)
    assert facts.status(rollback).state == "open"
    assert facts.status(success).state == "locked"
    actions.tick(users["member"], hand_states(runbook, rollback)[0])

    sign_off_through(runbook, 2, users["member"], users["lead"]) if False else None
    second = gated(runbook)[1]
    complete_phase(runbook, second, users["member"])
    actions.sign_off(users["lead"], runbook, second)
    facts = rules.RunbookFacts.load(runbook)
    assert facts.status(success).state == "open"


def test_group_is_complete_when_all_its_items_are(runbook, users):
    first = gated(runbook)[0]
    override_bound(runbook, first)
    states = hand_states(runbook, first)
    group = states[0].item.group
    in_group = [s for s in states if s.item.group_id == group.pk]
    for st in in_group[:-1]:
        actions.tick(users["member"], st)
    assert not rules.group_complete(rules.RunbookFacts.load(runbook), group)
    actions.tick(users["member"], in_group[-1])
    assert rules.group_complete(rules.RunbookFacts.load(runbook), group)


def test_not_applicable_counts_as_complete_and_needs_a_reason(runbook, users):
    first = gated(runbook)[0]
    st = ItemState.objects.get(runbook=runbook, item__text__icontains="(if applicable)")
    assert st.item.group.phase == first
    with pytest.raises(actions.Refused):
        actions.mark_not_applicable(users["member"], st, "  ")
    actions.mark_not_applicable(users["member"], st, "No custom domain for this app")
    st.refresh_from_db()
    assert st.complete and st.na_reason == "No custom domain for this app"


def test_member_cannot_mark_an_ordinary_item_not_applicable_but_a_lead_can(runbook, users):
    st = hand_states(runbook, gated(runbook)[0])[0]
    with pytest.raises(actions.Refused) as exc:
        actions.mark_not_applicable(users["member"], st, "skip")
    assert exc.value.status == 403
    actions.mark_not_applicable(users["lead"], st, "covered elsewhere")
    st.refresh_from_db()
    assert st.not_applicable
