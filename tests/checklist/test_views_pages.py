"""The pages: who sees what, fixed query counts, error pages, login lockout, security headers."""
import re
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.test import override_settings
from django.urls import reverse

from checklist import actions, rules
from checklist.models import AuditEvent, ItemState

from .factories import gated, sign_off_through, hand_states, states_of

pytestmark = pytest.mark.django_db

SMALL = Path(__file__).with_name("small_checklist.md")


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_runbook_page_query_count_does_not_grow_with_items(client, users, runbook,
                                                         django_assert_num_queries):
    """136 items (the seed) and 5 items (a small template) cost the same number of queries."""
    small_tpl, _ = actions.import_template(SMALL.read_bytes(), name="small")
    small = actions.start_runbook(users["lead"], small_tpl, "small")
    assert ItemState.objects.filter(runbook=runbook).count() == 136
    assert ItemState.objects.filter(runbook=small).count() == 5
    login(client, users["member"])
    # A few notes and ticks, so the notes and who-ticked joins are exercised too.
    for st in hand_states(runbook, gated(runbook)[0])[:3]:
        actions.tick(users["member"], st, note="checked")
    for st in hand_states(small, gated(small)[0])[:1]:
        actions.tick(users["member"], st, note="checked")

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for rb in (runbook, small):
        client.get(reverse("runbook", args=[rb.pk]))  # warm the session and role caches alike
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(reverse("runbook", args=[rb.pk]))
        assert response.status_code == 200
        counts[rb.name] = len(ctx)
    assert counts["MINGUS production"] == counts["small"], counts
    with django_assert_num_queries(counts["small"]):
        client.get(reverse("runbook", args=[runbook.pk]))
    assert counts["small"] <= 14


@pytest.mark.parametrize("signed", [0, 1, 2, 3])
def test_runbook_page_is_built_around_the_current_phase_and_stays_small(
        client, users, runbook, signed, django_assert_max_num_queries):
    """The 136-item page: the current phase first and open with its items, every other phase a
    head with its counts and a collapsed item list loaded on opening; under 60 KB for a lead
    (the heaviest view) whichever phase is current; a fixed query ceiling."""
    sign_off_through(runbook, signed, users["member"], users["lead"])
    login(client, users["lead"])
    client.get(reverse("runbook", args=[runbook.pk]))  # warm the session and role caches
    with django_assert_max_num_queries(14):
        response = client.get(reverse("runbook", args=[runbook.pk]))
    body = response.content.decode()
    print(f"runbook page, {signed} phases signed off, as a lead: {len(response.content)} bytes")
    assert len(response.content) < 60_000, len(response.content)
    current = gated(runbook)[signed]
    assert body.count('id="item-') == len(states_of(runbook, current))
    facts = rules.RunbookFacts.load(runbook)
    sections = [int(m) for m in re.findall(r'<section class="card phase [^"]*" id="phase-(\d+)"', body)]
    assert sections[0] == current.pk and sorted(sections) == sorted(p.pk for p in facts.phases)
    assert f'id="phase-box-{current.pk}" open' in body
    for phase in facts.phases:
        if phase.pk != current.pk:
            assert reverse("phase-items", args=[runbook.pk, phase.pk]) in body
    # Signed-off phases say so with their counts; later ones say they are locked.
    nav = body[body.index('id="phase-nav-h"'):]
    for phase in gated(runbook)[:signed]:
        n = len(states_of(runbook, phase))
        assert re.search(rf"{re.escape(phase.short_title)}</a> <span class=\"badge "
                         rf"state-signed-off\">Signed off</span> <span class=\"count\">{n}/{n}", nav)


def test_a_collapsed_phase_loads_its_items_in_a_fixed_number_of_queries(
        client, users, runbook, django_assert_max_num_queries):
    login(client, users["member"])
    migration = gated(runbook)[1]
    url = reverse("phase-items", args=[runbook.pk, migration.pk])
    client.get(url)
    with django_assert_max_num_queries(14):
        body = client.get(url).content.decode()
    rows = re.findall(r'<li class="item locked" id="item-(\d+)"', body)
    assert len(rows) == len(states_of(runbook, migration))
    assert "Locked" in body and "hx-post" not in body.split('class="phase-jobs"')[0]


def test_poll_is_cheap_while_nothing_changed(client, users, runbook, django_assert_max_num_queries):
    login(client, users["member"])
    url = reverse("runbook-poll", args=[runbook.pk]) + f"?rev={runbook.revision}"
    with django_assert_max_num_queries(4):
        response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 204


def test_member_sees_tick_buttons_but_not_sign_off_or_history(client, users, runbook):
    body = login(client, users["member"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert "Tick: " in body
    work = sum(len(states_of(runbook, p)) for p in gated(runbook))
    assert f"Work: <strong>0 / {work}</strong>" in body  # the computed status block
    assert "Sign off" not in body
    assert reverse("history", args=[runbook.pk]) not in body
    # The Migration phase is locked: its reason shows, its items have no buttons.
    assert "Migration opens when Pre-Deployment is complete and signed off." in body


def test_auditor_sees_no_write_controls(client, users, runbook):
    login(client, users["auditor"])
    for url in (reverse("runbook", args=[runbook.pk]), reverse("go-live", args=[runbook.pk])):
        body = client.get(url).content.decode()
        assert "hx-post" not in body
        assert 'method="post"' not in body.split("</header>", 1)[1]  # logout form aside
        assert "Run:" not in body
    assert "History &amp; exports" in client.get(reverse("runbook", args=[runbook.pk])).content.decode()


def test_lead_sees_sign_off_once_phase_complete(client, users, runbook):
    from .factories import complete_phase

    complete_phase(runbook, gated(runbook)[0], users["member"])
    body = login(client, users["lead"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert "Sign off Pre-Deployment Phase" in body


def test_go_live_page_shows_missing_and_approvals(client, users, runbook):
    sign_off_through(runbook, 4, users["member"], users["lead"])
    actions.request_go_live(users["lead"], runbook)
    actions.approve_go_live(users["lead2"], runbook, "fine by me")
    login(client, users["admin"])
    body = client.get(reverse("go-live", args=[runbook.pk])).content.decode()
    assert "Go-live needs 1 more lead approval(s)." in body
    assert "lead2 approved" in body
    assert "Approve go-live" not in body  # an admin who is not a lead never approves
    from tests.conftest import make_user

    login(client, make_user("lead3", "lead"))
    body = client.get(reverse("go-live", args=[runbook.pk])).content.decode()
    assert "Approve go-live" in body  # a lead who did not request


def test_item_detail_shows_history_and_notes(client, users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    actions.tick(users["member"], st, note="backups at /srv/backups")
    body = login(client, users["auditor"]).get(
        reverse("item-detail", args=[runbook.pk, st.pk])).content.decode()
    assert "backups at /srv/backups" in body
    assert ">tick<" in body
    assert "No job has run for this item." in body


def test_history_is_for_auditors_and_leads(client, users, runbook):
    url = reverse("history", args=[runbook.pk])
    assert login(client, users["member"]).get(url).status_code == 403
    assert AuditEvent.objects.filter(action="denied", after__attempted="history").exists()
    for role in ("auditor", "lead"):
        response = login(client, users[role]).get(url)
        assert response.status_code == 200
        assert "✔ Verified" in response.content.decode()


def test_history_filters_and_paginates(client, users, runbook):
    states = hand_states(runbook, gated(runbook)[0])
    for st in states:
        actions.tick(users["member"], st)
    login(client, users["auditor"])
    url = reverse("history", args=[runbook.pk])
    first = client.get(url).context["page"]
    assert first.paginator.count == len(states) + 1  # + runbook-start
    assert first.paginator.num_pages == 1 + (len(states) + 1) // 50
    only = client.get(url, {"item": states[2].item_id}).context["page"]
    assert [e.item_id for e in only] == [states[2].item_id]
    assert client.get(url, {"action": "runbook-start"}).context["page"].paginator.count == 1
    assert client.get(url, {"person": "member"}).context["page"].paginator.count == len(states)
    assert client.get(url, {"date_from": "2000-01-01", "date_to": "2000-01-02"}).context[
        "page"].paginator.count == 0


def test_history_shows_a_broken_chain(client, users, runbook):
    from django.db import connection

    event = AuditEvent.objects.filter(runbook=runbook).first()
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE checklist_auditevent DISABLE TRIGGER USER")
        cur.execute("UPDATE checklist_auditevent SET actor_label = 'mallory' WHERE id = %s",
                    [event.pk])
        cur.execute("ALTER TABLE checklist_auditevent ENABLE TRIGGER USER")
    body = login(client, users["auditor"]).get(reverse("history", args=[runbook.pk])).content.decode()
    assert f"Broken at event #{event.seq}" in body


def test_pages_require_login(client, runbook):
    response = client.get(reverse("runbook", args=[runbook.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_htmx_poll_after_logout_redirects_the_whole_page(client, runbook):
    response = client.get(reverse("runbook-poll", args=[runbook.pk]), HTTP_HX_REQUEST="true",
                          HTTP_HX_CURRENT_URL=f"http://testserver/runbooks/{runbook.pk}/")
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"/login/?next=/runbooks/{runbook.pk}/"


def test_refusal_over_htmx_is_marked_for_the_page(client, users, runbook):
    locked = hand_states(runbook, gated(runbook)[1])[0]
    response = login(client, users["member"]).post(
        reverse("item-tick", args=[runbook.pk, locked.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert response["X-Mingus-Message"] == "conflict"
    assert "Migration opens when Pre-Deployment is complete and signed off." in response.content.decode()


@override_settings(DEBUG=False)
def test_404_page_is_plain_and_useful(client, users):
    response = login(client, users["member"]).get("/runbooks/999999/")
    assert response.status_code == 404
    assert "Not found (404)" in response.content.decode()


def test_500_page_renders_without_context():
    html = render_to_string("500.html")
    assert "Server error (500)" in html and "{%" not in html


def test_403_page_for_a_user_without_role(client, users, runbook):
    response = login(client, users["nobody"]).get(reverse("runbook", args=[runbook.pk]))
    assert response.status_code == 403
    assert "You need a role" in response.content.decode()


@override_settings(AXES_LOCKOUT_CALLABLE="checklist.views.lockout", AXES_FAILURE_LIMIT=5)
def test_login_lockout_shows_a_clear_message(client, users):
    for _ in range(5):
        response = client.post(reverse("login"), {"username": "member", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "member", "password": "pw-member"})
    assert response.status_code == 429
    assert "Too many failed attempts." in response.content.decode()


def test_login_form_logs_in(client, users):
    response = client.post(reverse("login"), {"username": "member", "password": "pw-member"})
    assert response.status_code == 302
    assert client.get(reverse("runbook-list")).status_code == 200


def test_security_headers(client, users, runbook):
    response = login(client, users["member"]).get(reverse("runbook", args=[runbook.pk]))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.content.decode()
    assert "<script>" not in body and " style=" not in body and "hx-on" not in body
    assert '"X-CSRFToken"' in body


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_SSL_REDIRECT=False)
def test_hsts_over_https(client, users):
    response = client.get(reverse("login"), secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_htmx_writes_need_csrf(users, runbook):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    login(client, users["member"])
    st = hand_states(runbook, gated(runbook)[0])[0]
    url = reverse("item-tick", args=[runbook.pk, st.pk])
    assert client.post(url, HTTP_HX_REQUEST="true").status_code == 403
    # The token as htmx sends it: the page's hx-headers (its body is rendered once for many
    # readers, each page load putting its own token in).
    page = client.get(reverse("runbook", args=[runbook.pk])).content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    assert f'name="csrfmiddlewaretoken" value="{token}"' in page  # the sign-off forms' too
    assert client.post(url, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token).status_code == 200


@pytest.mark.django_db
def test_runbook_page_loads_the_deployment_check_panels(client, runbook, users):
    client.force_login(users["member"])
    page = client.get(f"/runbooks/{runbook.pk}/").content.decode()
    for name in ("trigger-banner", "success-criteria", "monitoring"):
        url = reverse(name, args=[runbook.pk])
        assert f'hx-get="{url}"' in page
        response = client.get(url, HTTP_HX_REQUEST="true")
        assert response.status_code == 200, name
    criteria = client.get(reverse("success-criteria", args=[runbook.pk]),
                          HTTP_HX_REQUEST="true").content.decode()
    assert "Page load times" in criteria or "page load" in criteria.lower()
    assert "hx-post" in criteria  # a member may run the evaluation
    client.force_login(users["auditor"])
    for name in ("trigger-banner", "success-criteria", "monitoring"):
        body = client.get(reverse(name, args=[runbook.pk]), HTTP_HX_REQUEST="true").content
        assert b"hx-post" not in body and b'method="post"' not in body, name


@pytest.mark.django_db
def test_runbooks_list_query_count_does_not_grow_with_runbooks(client, template, users,
                                                               django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(users["auditor"])
    first = actions.start_runbook(users["lead"], template, "one")
    sign_off_through(first, 1, users["member"], users["lead"])
    with CaptureQueriesContext(connection) as one:
        page = client.get(reverse("runbook-list")).content.decode()
    assert "Migration Phase" in page  # the current phase of "one"
    for n in range(4):
        actions.start_runbook(users["lead"], template, f"more {n}")
    with CaptureQueriesContext(connection) as five:
        page = client.get(reverse("runbook-list")).content.decode()
    work = sum(len(states_of(first, p)) for p in gated(first))
    assert page.count(f"/ {work}</td>") == 5
    assert len(five.captured_queries) == len(one.captured_queries)


def test_runbook_body_is_rendered_once_per_kind_of_reader_each_page_with_its_own_token(
        users, runbook):
    """Two leads opening the page at one revision: the second is served the body the first
    rendered (fewer queries), with its own CSRF token in the forms; a tick (a new revision) and
    an admin renaming a user (a new audit event, no revision) each show at once."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    login(first, users["lead"])
    login(second, users["lead2"])
    url = reverse("runbook", args=[runbook.pk])
    with CaptureQueriesContext(connection) as rendered:
        page_one = first.get(url).content.decode()
    with CaptureQueriesContext(connection) as cached:
        page_two = second.get(url).content.decode()
    assert len(cached) < len(rendered) - 4, (len(cached), len(rendered))
    assert "mingus-csrf-placeholder" not in page_two
    form = re.search(r'<form hx-post="[^"]*/contacts/[^"]*".*?</form>', page_two, re.S).group(0)
    action = re.search(r' action="([^"]+)"', form).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert token not in page_one
    # The form's token is this reader's own: a plain (no htmx) post of it gets past the CSRF
    # check and saves.
    response = second.post(action, {"csrfmiddlewaretoken": token, "value": "ops@example.com"})
    assert response.status_code == 302
    assert 'value="ops@example.com"' in first.get(url).content.decode()
    phase = gated(runbook)[0]
    st = hand_states(runbook, phase)[0]
    actions.tick(users["member"], st)
    assert f'id="item-{st.pk}"' in page_two and 'class="who">by member' not in page_two
    assert "by member" in second.get(url).content.decode()
    member = users["member"]
    member.username = "renamed-by-an-admin"
    actions.admin_save(users["admin"], member, change=True)
    assert "by renamed-by-an-admin" in second.get(url).content.decode()
