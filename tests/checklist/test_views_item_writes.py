"""Item writes over htmx answer with the item row plus out-of-band swaps of what the write changed
(group and phase headings, status block, the page's revision), or with the whole body when
sign-offs were withdrawn."""
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from checklist import actions, jobs
from checklist.models import ItemState, Runbook

from .factories import complete_phase, gated, sign_off_through, hand_states, override_bound, states_of

pytestmark = pytest.mark.django_db

SMALL = Path(__file__).with_name("small_checklist.md")
HX = {"HTTP_HX_REQUEST": "true"}


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def rev(runbook):
    return Runbook.objects.get(pk=runbook.pk).revision


def test_tick_answers_with_the_row_and_out_of_band_swaps(client, users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    response = login(client, users["member"]).post(
        reverse("item-tick", args=[runbook.pk, st.pk]), {"rev": rev(runbook)}, **HX)
    assert response.status_code == 200
    assert "HX-Retarget" not in response
    body = response.content.decode()
    assert body.lstrip().startswith(f'<li class="item checked" id="item-{st.pk}" hx-swap="outerHTML">')
    assert body.count('id="item-') == 1  # no other row is re-rendered
    assert f'id="group-h-{st.item.group_id}" hx-swap-oob="true"' in body
    assert f'id="phase-head-{st.item.group.phase_id}" hx-swap-oob="true"' in body
    assert 'id="status-block" aria-labelledby="status-h" hx-swap-oob="true"' in body
    work = sum(len(states_of(runbook, p)) for p in gated(runbook))
    assert f"Work: <strong>1 / {work}</strong>" in body
    assert len(body) < 10_000, len(body)


def test_the_page_takes_the_new_revision_only_when_no_one_else_wrote(client, users, runbook):
    first, second, third = hand_states(runbook, gated(runbook)[0])[:3]
    login(client, users["member"])
    shown = rev(runbook)
    body = client.post(reverse("item-tick", args=[runbook.pk, first.pk]), {"rev": shown},
                       **HX).content.decode()
    assert f'id="runbook-rev" name="rev" value="{shown + 1}"' in body
    # Someone else writes; the page still shows shown + 1, so after its own next write it must
    # not take the new revision as its own: its next poll brings the other person's change.
    actions.tick(users["lead"], second)
    body = client.post(reverse("item-tick", args=[runbook.pk, third.pk]), {"rev": shown + 1},
                       **HX).content.decode()
    assert 'id="runbook-sync"' not in body
    poll = client.get(reverse("runbook-poll", args=[runbook.pk]) + f"?rev={shown + 1}", **HX)
    assert poll.status_code == 200
    assert f'id="item-{second.pk}"' in poll.content.decode()


def test_last_tick_of_a_phase_offers_the_lead_its_sign_off(client, users, runbook):
    pre = gated(runbook)[0]
    override_bound(runbook, pre)
    states = hand_states(runbook, pre)
    for st in states[:-1]:
        actions.tick(users["member"], st)
    body = login(client, users["lead"]).post(
        reverse("item-tick", args=[runbook.pk, states[-1].pk]), **HX).content.decode()
    assert f"Sign off {pre.title}" in body
    assert '<span class="badge state-complete">Complete</span>' in body


def test_untick_that_withdraws_a_sign_off_answers_with_the_whole_body(client, users, runbook):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    st = ItemState.objects.get(pk=hand_states(runbook, gated(runbook)[0])[0].pk)
    url = reverse("item-untick", args=[runbook.pk, st.pk])
    # First it asks: what would be withdrawn, and a reason.
    response = login(client, users["member"]).post(url, {"rev": rev(runbook), "version": str(st.version)}, **HX)
    assert response.status_code == 409 and response["X-Mingus-Message"] == "refused"
    body = response.content.decode()
    assert "the sign-off of Pre-Deployment Phase by lead" in body
    assert 'name="confirm" value="yes"' in body and 'name="reason" required' in body
    assert ItemState.objects.get(pk=st.pk).checked
    response = client.post(url, {"rev": rev(runbook), "version": str(st.version), "confirm": "yes",
                                 "reason": "backup was corrupt"}, **HX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#runbook-body"
    assert response["HX-Reswap"] == "outerHTML"
    body = response.content.decode()
    # The whole body, built around now: Pre-Deployment open with its items again.
    assert body.count('id="item-') == len(states_of(runbook, gated(runbook)[0]))
    assert "Migration opens when Pre-Deployment is complete and signed off." in body
    assert 'id="withdrawal-banner"' in body and "backup was corrupt" in body


def test_untick_without_a_sign_off_answers_with_the_row(client, users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    actions.tick(users["member"], st)
    response = login(client, users["member"]).post(
        reverse("item-untick", args=[runbook.pk, st.pk]), **HX)
    assert "HX-Retarget" not in response
    assert response.content.decode().count('id="item-') == 1


def test_item_write_query_count_does_not_grow_with_items(client, users, runbook):
    small_tpl, _ = actions.import_template(SMALL.read_bytes(), name="small")
    small = actions.start_runbook(users["lead"], small_tpl, "small")
    login(client, users["member"])
    counts = {}
    for rb in (runbook, small):
        # Items without jobs on both (a job adds one query for its runs, however many items).
        bound = jobs.runbook_bindings(rb)
        first, second = [s for s in hand_states(rb, gated(rb)[0]) if s.item_id not in bound][:2]
        actions.add_note(users["member"], second, "a note")
        client.post(reverse("item-tick", args=[rb.pk, first.pk]), **HX)  # warm caches alike
        for verb in ("tick", "note", "untick"):
            with CaptureQueriesContext(connection) as ctx:
                response = client.post(reverse(f"item-{verb}", args=[rb.pk, second.pk]),
                                       {"note": "checked"}, **HX)
            assert response.status_code == 200 and "HX-Retarget" not in response
            counts[(rb.name, verb)] = len(ctx)
    for verb in ("tick", "note", "untick"):
        assert counts[("MINGUS production", verb)] == counts[("small", verb)], counts
    # 33: the write records what its revision changed (one insert) for the live pages.
    assert max(counts.values()) <= 33, counts


def test_not_applicable_and_back_answer_with_the_row(client, users, runbook):
    # The seed's one '(if applicable)' item (the custom domain) is job-bound (do-domain).
    st = next(s for s in states_of(runbook, gated(runbook)[0]) if s.item.if_applicable)
    login(client, users["member"])
    body = client.post(reverse("item-not-applicable", args=[runbook.pk, st.pk]),
                       {"reason": "no cron here"}, **HX).content.decode()
    assert "Not applicable: no cron here" in body and body.count('id="item-') == 1
    body = client.post(reverse("item-applicable", args=[runbook.pk, st.pk]), **HX).content.decode()
    assert "More actions on: " in body and body.count('id="item-') == 1


def test_page_shows_the_newest_note_and_how_many(client, users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    for text in ("first note", "second note", "third note"):
        actions.add_note(users["member"], st, text)
    body = login(client, users["member"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert "third note" in body
    assert "first note" not in body
    assert f'<a href="{reverse("item-detail", args=[runbook.pk, st.pk])}">3 notes</a>' in body


def test_cached_rows_follow_role_and_state(client, users, runbook):
    """Rows are cached between page loads; a row never shows another role's buttons or an old
    state."""
    st = hand_states(runbook, gated(runbook)[0])[0]
    url = reverse("runbook", args=[runbook.pk])
    assert "Tick: " in login(client, users["member"]).get(url).content.decode()
    assert "hx-post" not in login(client, users["auditor"]).get(url).content.decode()
    actions.tick(users["member"], st, note="done by hand")
    body = login(client, users["member"]).get(url).content.decode()
    row = body.split(f'id="item-{st.pk}"', 1)[1].split("</li>", 1)[0]
    assert "Done" in row and "by member" in row and "done by hand" in row


def test_a_write_from_a_page_with_its_stream_open_answers_with_the_row_alone(client, users,
                                                                             runbook):
    """live.js marks writes from a page whose stream is open (X-Mingus-Live): the headings,
    counts and status block come over the stream, so the answer is the row, in fewer queries;
    a write that withdraws sign-offs still answers with the whole body."""
    first, second = hand_states(runbook, gated(runbook)[0])[:2]
    login(client, users["member"])
    live = {**HX, "HTTP_X_MINGUS_LIVE": "open"}
    client.post(reverse("item-tick", args=[runbook.pk, first.pk]), **HX)  # warm caches alike
    with CaptureQueriesContext(connection) as full:
        client.post(reverse("item-untick", args=[runbook.pk, first.pk]), **HX)
    with CaptureQueriesContext(connection) as alone:
        response = client.post(reverse("item-tick", args=[runbook.pk, second.pk]), **live)
    body = response.content.decode()
    assert response.status_code == 200 and "HX-Retarget" not in response
    assert body.startswith(f'<li class="item checked" id="item-{second.pk}" hx-swap="outerHTML">'), body[:200]
    assert body.count('id="item-') == 1 and "by member" in body
    assert "status-block" not in body and "group-h-" not in body and "runbook-rev" not in body
    assert len(alone) < len(full), (len(alone), len(full))

    complete_phase(runbook, gated(runbook)[0], users["member"])
    actions.sign_off(users["lead"], runbook, gated(runbook)[0], "ok")
    st = ItemState.objects.get(pk=second.pk)
    response = client.post(reverse("item-untick", args=[runbook.pk, st.pk]),
                           {"version": str(st.version), "confirm": "yes",
                            "reason": "backup was corrupt"}, **live)
    assert response.status_code == 200 and response["HX-Retarget"] == "#runbook-body"
    assert 'id="withdrawal-banner"' in response.content.decode()
