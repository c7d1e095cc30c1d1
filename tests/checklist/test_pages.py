"""checklist/pages.py: the pieces a live delta swaps (rows, heads, status block) by stable id, and
the rules behind each row's controls."""
import re

import pytest

from checklist import actions, pages, rules
from checklist.models import ItemState

from .factories import gated, hand_states, states_of

pytestmark = pytest.mark.django_db


def test_render_rows_gives_each_row_by_its_state_id(users, runbook):
    first = hand_states(runbook, gated(runbook)[0])[:2]
    actions.tick(users["member"], first[0], note="seen")
    rows = pages.render_rows(users["member"], runbook, [s.pk for s in first])
    assert set(rows) == {s.pk for s in first}
    for st in first:
        assert re.match(rf'<li class="item[^"]*" id="item-{st.pk}"', rows[st.pk].lstrip())
    assert "seen" in rows[first[0].pk] and "Untick" in rows[first[0].pk]
    assert "hx-swap-oob" not in rows[first[0].pk]
    oob = pages.render_rows(users["member"], runbook, [first[0].pk], oob=True)
    assert 'hx-swap-oob="true"' in oob[first[0].pk].split(">", 1)[0]


def test_render_deltas_carries_rows_heads_and_status_never_the_body(users, runbook):
    phase = gated(runbook)[0]
    st = hand_states(runbook, phase)[0]
    actions.tick(users["member"], st)
    html = pages.render_deltas(users["lead"], runbook, [st.pk])
    assert f'id="item-{st.pk}"' in html
    assert f'id="group-h-{st.item.group_id}"' in html
    assert f'id="phase-head-{phase.pk}"' in html
    assert 'id="status-block"' in html
    assert 'id="runbook-body"' not in html
    # Only the one row: no other item of the runbook.
    assert html.count('id="item-') == 1
    assert html.count('hx-swap-oob="true"') == 4
    work = sum(len(states_of(runbook, p)) for p in gated(runbook))
    assert f"Work: <strong>1 / {work}</strong>" in pages.render_status(users["lead"], runbook)


def test_rows_of_a_locked_phase_offer_no_controls(users, runbook):
    locked = states_of(runbook, gated(runbook)[1])[0]
    row = pages.render_rows(users["lead"], runbook, [locked.pk])[locked.pk]
    assert "hx-post" not in row


def test_item_choices_follow_the_rules_the_actions_ask(users, runbook):
    facts = rules.RunbookFacts.load(runbook)
    bound = facts.bound
    by_hand = next(s for s in facts.states if s.item_id not in bound
                   and facts.status(s.item.group.phase_id).is_open)
    job = next(s for s in facts.states if bound.get(s.item_id) and rules.SCHEMA_APPROVAL
               not in bound[s.item_id] and facts.status(s.item.group.phase_id).is_open)
    member = rules.item_choices(users["member"], by_hand, facts)
    assert member.tick and not member.untick and not member.override
    assert member.mark_na == bool(by_hand.item.if_applicable)
    assert not rules.item_choices(users["member"], job, facts).tick
    lead_on_job = rules.item_choices(users["lead"], job, facts)
    assert lead_on_job.override and lead_on_job.mark_na and not lead_on_job.tick
    assert rules.item_choices(users["auditor"], by_hand, facts) == rules.ItemChoices(
        False, False, False, False, False, False)


def test_equal_viewer_keys_get_equal_rows(users, runbook):
    ids = list(ItemState.objects.filter(runbook=runbook).values_list("pk", flat=True)[:5])
    assert pages.viewer_key(users["lead"]) == pages.viewer_key(users["lead2"])
    assert pages.render_rows(users["lead"], runbook, ids) == pages.render_rows(
        users["lead2"], runbook, ids)
    assert pages.viewer_key(users["member"]) != pages.viewer_key(users["lead"])
