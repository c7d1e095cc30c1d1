"""The pages in Chromium as people meet them on deployment day: refusals shown where the click was
and kept until dismissed, an untick that would withdraw sign-offs asks first and then tells
everyone, every page fits 375 px, and axe-core finds no WCAG 2 A/AA violation on any page."""
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from checklist import actions, rules
from checklist.models import AuditEvent, ItemState, SignOff, TaskRun
from tests.checklist.factories import gated, hand_states, sign_off_through, states_of

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
AXE_VERSION = "4.14.1"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page):
    """axe-core's WCAG 2 A/AA violations on the page as it is now: [(rule, [target, ...])]."""
    source = AXE.read_text(encoding="utf-8")
    assert f"axe v{AXE_VERSION}" in source[:200]
    result = page.evaluate(
        "async ([source, tags]) => { if (!window.axe) { (0, eval)(source); }"
        " const r = await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']});"
        " return r.violations.map(v => [v.id + ': ' + v.help,"
        "   v.nodes.slice(0, 5).map(n => n.target.join(' '))]); }",
        [source, WCAG])
    return [(rule, targets) for rule, targets in result]


def script_errors(page):
    """Console errors but the browser's own note of a 4xx answer (the refusals tested here)."""
    return [e for e in page.console_errors if not e.startswith("Failed to load resource")]


def fits(page, width):
    return page.evaluate("document.documentElement.scrollWidth") <= width


def wait_for_poll(page):
    with page.expect_response(re.compile(r"/poll/\?rev=")):
        pass


def item(page, state):
    return page.locator(f"#item-{state.pk}")


def test_a_refused_empty_note_shows_beside_the_form_and_stays_until_dismissed(new_page, users,
                                                                              runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    page = log_in(new_page(), "member")
    page.goto(f"/runbooks/{runbook.pk}/")
    page.get_by_role("button", name=f"Add note on: {st.item.text}").click()
    inline = item(page, st).locator(".inline-notice")
    expect(inline).to_contain_text("A note cannot be empty.")
    expect(page.locator("#messages")).to_contain_text("A note cannot be empty.")
    # A poll, and another write elsewhere, leave both copies in place.
    wait_for_poll(page)
    other = hand_states(runbook, gated(runbook)[0])[1]
    page.get_by_role("button", name=f"Tick: {other.item.text}").click()
    expect(item(page, other)).to_contain_text("Done")
    expect(inline).to_contain_text("A note cannot be empty.")
    expect(page.locator("#messages .notice")).to_have_count(1)
    # A saved note clears its box (a second submit would add it twice).
    note = page.get_by_label(f"Note on: {st.item.text}", exact=True)
    note.fill("checked the cron entry")
    page.get_by_role("button", name=f"Add note on: {st.item.text}").click()
    expect(item(page, st).locator(".notes")).to_contain_text("checked the cron entry")
    expect(note).to_have_value("")
    # Dismissed in one place, gone from both.
    inline.get_by_role("button", name="Dismiss").click()
    expect(page.locator(".inline-notice")).to_have_count(0)
    expect(page.locator("#messages .notice")).to_have_count(0)
    assert not script_errors(page), page.console_errors


def test_an_untick_in_a_signed_off_phase_asks_names_what_it_withdraws_then_tells_everyone(
        new_page, users, runbook, settings):
    settings.GO_LIVE_APPROVALS_REQUIRED = 1
    sign_off_through(runbook, 4, users["member"], users["lead"])
    actions.request_go_live(users["lead"], runbook)
    actions.approve_go_live(users["lead2"], runbook)
    pre = gated(runbook)[0]
    st = hand_states(runbook, pre)[0]
    lead = log_in(new_page(), "lead2")
    lead.goto(f"/runbooks/{runbook.pk}/go-live/")
    expect(lead.locator(".go-live-state")).to_have_text("✔ Authorized")

    page = log_in(new_page(width=375, height=800), "member")
    page.goto(f"/runbooks/{runbook.pk}/")
    # Every phase is signed off: all collapsed; open Pre-Deployment and untick one of its items.
    page.locator(f"#phase-box-{pre.pk} > summary").click()
    page.get_by_role("button", name=f"Untick: {st.item.text}").click()
    confirm = item(page, st).locator("form.confirm-withdraw")
    withdraws = confirm.locator("ul.withdraws li")
    expect(withdraws).to_have_count(5)
    for phase, line in zip(gated(runbook), withdraws.all()):
        expect(line).to_have_text(f"the sign-off of {phase.title} by lead")
    expect(withdraws.last).to_have_text("the authorized go-live request by lead with its 1 approval(s)")
    assert ItemState.objects.get(pk=st.pk).checked  # nothing happened yet
    assert fits(page, 375)

    confirm.get_by_label(re.compile("^Why")).fill("the backup manifest was wrong")
    confirm.get_by_role("button", name="Untick and withdraw").click()
    banner = page.locator("#withdrawal-banner")
    expect(banner).to_contain_text("withdrawn")
    expect(banner).to_contain_text("the backup manifest was wrong")
    expect(banner).to_contain_text("the go-live request")
    expect(page.locator(".confirm-withdraw")).to_have_count(0)
    assert not ItemState.objects.get(pk=st.pk).checked
    assert SignOff.objects.filter(runbook=runbook, withdrawn_at__isnull=True).count() == 0
    event = AuditEvent.objects.get(runbook=runbook, action="untick", item=st.item)
    assert event.after["reason"] == "the backup manifest was wrong"
    assert len(event.after["withdrew"]) == 5

    # The other lead's go-live page says so without a reload (its next poll or a reload).
    lead.reload()
    expect(lead.locator("#withdrawal-banner")).to_contain_text("the backup manifest was wrong")
    expect(lead.locator(".go-live-state")).to_have_text("Not requested")
    assert not script_errors(page), page.console_errors


def _pages(runbook, users):
    """Every page of the app (but the admin), with what must be on it before measuring."""
    st = hand_states(runbook, rules.current_phase(rules.RunbookFacts.load(runbook)))[0]
    actions.tick(users["member"], st, note="copied the manifest")
    run = TaskRun.objects.create(
        runbook=runbook, kind="check-connectivity", state=TaskRun.FAILED,
        error="check-connectivity: connect: server does not support SSL, but SSL was required",
        log="check check-connectivity: url=postgres://app:***@db:5432/app\n")
    return [
        ("runbook list", "/", "table.runbooks"),
        ("runbook", f"/runbooks/{runbook.pk}/", "#monitoring"),
        ("item", f"/runbooks/{runbook.pk}/items/{st.pk}/", "#hist-h"),
        ("run", f"/runbooks/{runbook.pk}/runs/{run.pk}/", "#ev-h"),
        ("go-live", f"/runbooks/{runbook.pk}/go-live/", "#go-live-body"),
        ("history", f"/runbooks/{runbook.pk}/history/", "table.events"),
        ("settings", f"/runbooks/{runbook.pk}/settings/", "main h1"),
        ("check settings", f"/deploychecks/runbooks/{runbook.pk}/settings/", "main h1"),
        ("templates", "/templates/", "main h1"),
        ("template", f"/templates/{runbook.template_id}/", "#template-phases"),
    ]


def test_every_page_fits_375_px_and_passes_axe(new_page, users, runbook):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    pages = _pages(runbook, users)
    problems = {}
    for width in (375, 1280):
        page = log_in(new_page(width=width, height=800), "lead")
        for name, url, ready in pages:
            page.goto(url)
            expect(page.locator(ready).first).to_be_visible()
            if name == "runbook":
                # Also the loaded parts: a collapsed phase opened, a row's extra forms.
                expect(page.locator("#success-criteria")).to_be_visible()
                phase = gated(runbook)[2]
                page.locator(f"#phase-box-{phase.pk} > summary").click()
                expect(page.locator(f"#phase-items-{phase.pk} li.item").first).to_be_visible()
                page.locator("button.more").first.click()
                expect(page.locator(".more-forms").first).to_be_visible()
            if not fits(page, width):
                problems[(name, width)] = "wider than the screen: %s px" % page.evaluate(
                    "document.documentElement.scrollWidth")
            if width == 375 or name == "runbook":
                found = axe_violations(page)
                if found:
                    problems[(name, width, "axe")] = found
        if width == 375:
            # The login page, logged out.
            page.context.clear_cookies()
            page.goto("/login/")
            expect(page.get_by_label("Username")).to_be_visible()
            if not fits(page, width):
                problems[("login", width)] = "wider than the screen"
            if axe_violations(page):
                problems[("login", width, "axe")] = axe_violations(page)
    assert not problems, json.dumps({" ".join(map(str, k)): v for k, v in problems.items()},
                                    indent=1)


def test_check_failures_and_values_read_as_sentences(new_page, users, runbook):
    _pages(runbook, users)
    run = TaskRun.objects.get(runbook=runbook, kind="check-connectivity")
    page = log_in(new_page(), "lead")
    page.goto(f"/runbooks/{runbook.pk}/runs/{run.pk}/")
    expect(page.locator(".run-panel .notice")).to_have_text(
        "check-connectivity: the server offers no TLS (the connection requires it).")
    page.goto(f"/runbooks/{runbook.pk}/history/")
    details = page.locator("table.events td.details")
    expect(details.first).to_be_visible()
    text = " ".join(details.all_inner_texts())
    for repr_ in ("True", "False", "None", "{'", "[]"):
        assert repr_ not in text, (repr_, text)
    assert "checked: yes" in text
