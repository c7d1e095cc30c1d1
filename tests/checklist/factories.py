"""Small helpers that move a runbook along, for tests."""
from checklist import actions, rules
from checklist.models import ItemState


def states_of(runbook, phase):
    return list(
        ItemState.objects.filter(runbook=runbook, item__group__phase=phase)
        .select_related("item__group__phase")
        .order_by("item__group__order", "item__order")
    )


def hand_states(runbook, phase):
    """The phase's items that no job earns: the ones a member ticks by hand."""
    bound = rules.bound_kinds(runbook)
    return [st for st in states_of(runbook, phase) if st.item_id not in bound]


def gated(runbook):
    return rules.RunbookFacts.load(runbook).gated


def a_lead():
    from django.contrib.auth.models import User

    return User.objects.filter(groups__name="lead").order_by("pk").first()


def override_bound(runbook, phase):
    """Tick the phase's job-bound items without their jobs, as only a lead may: overridden with a
    reason; the schema-approval item (never overridden) marked not applicable."""
    bound = rules.bound_kinds(runbook)
    for st in states_of(runbook, phase):
        kinds = bound.get(st.item_id, ())
        if st.complete or not kinds:
            continue
        if rules.SCHEMA_APPROVAL in kinds:
            actions.mark_not_applicable(a_lead(), st, "approved outside this test")
        else:
            actions.override(a_lead(), st, "moving the test runbook along")


def complete_phase(runbook, phase, user):
    """Tick every open item: job-bound ones overridden by a lead, the rest by `user` by hand."""
    override_bound(runbook, phase)
    for st in hand_states(runbook, phase):
        if not st.complete:
            actions.tick(user, st)


def sign_off_through(runbook, count, member, lead):
    """Complete and sign off the first `count` gated phases."""
    for phase in gated(runbook)[:count]:
        complete_phase(runbook, phase, member)
        actions.sign_off(lead, runbook, phase, "ok")
