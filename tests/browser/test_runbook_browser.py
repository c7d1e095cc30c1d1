"""The runbook in a real browser: ticking, gating, live updates, sign-off, go-live, the auditor's
read-only view and the evidence pack, and a job's progress from a real worker."""
import hashlib
import json
import re
import sys
import zipfile

import pytest
from playwright.sync_api import expect

from checklist import actions
from checklist.models import CommandSpec, ItemState, TaskRun
from tests.checklist.factories import (complete_phase, gated, hand_states, override_bound,
                                       sign_off_through, states_of)

from .conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def item(page, state):
    return page.locator(f"#item-{state.pk}")


def runbook_url(runbook):
    return f"/runbooks/{runbook.pk}/"


def wait_for_poll(page):
    """Return right after the page's own poll answered, so the next one is seconds away."""
    with page.expect_response(re.compile(r"/poll/\?rev=")):
        pass


def test_member_ticks_and_a_locked_phase_refuses(new_page, users, runbook):
    page = log_in(new_page(), "member")
    expect(page.get_by_role("cell", name="MINGUS production")).to_be_visible()
    page.get_by_role("link", name="MINGUS production").click()
    first, second = hand_states(runbook, gated(runbook)[0])[:2]

    page.get_by_role("button", name=f"Tick: {first.item.text}").click()
    expect(item(page, first)).to_contain_text("Done")
    expect(item(page, first)).to_contain_text("by member")
    page.get_by_role("button", name=f"Tick: {second.item.text}").press("Enter")  # keyboard works
    expect(item(page, second)).to_contain_text("Done")
    assert ItemState.objects.get(pk=second.pk).checked
    # The write answered with the row; the headings and the status block came out of band.
    work = sum(len(states_of(runbook, p)) for p in gated(runbook))
    expect(page.locator("#status-block")).to_contain_text(f"2 / {work}")
    expect(page.locator(f"#phase-head-{first.item.group.phase_id} .count")).to_have_text(
        f"2 / {len(states_of(runbook, gated(runbook)[0]))}")

    # Locked phases show why, and offer no buttons.
    migration = gated(runbook)[1]
    expect(page.locator(f"#phase-{migration.pk} .lock-reason")).to_have_text(
        "Migration opens when Pre-Deployment is complete and signed off.")
    expect(page.locator(f"#phase-{migration.pk} button")).to_have_count(0)

    # Open Migration, let the page catch up, then lock it again behind the page's back: the
    # stale Tick button is refused by the server and its reason shows in the page.
    sign_off_through(runbook, 1, users["member"], users["lead"])
    target = hand_states(runbook, migration)[0]
    tick_button = page.get_by_role("button", name=f"Tick: {target.item.text}")
    expect(tick_button).to_be_visible()
    wait_for_poll(page)
    actions.untick(users["lead"], ItemState.objects.get(pk=first.pk), confirm=True,
                   reason="re-check the backup")
    tick_button.click()
    expect(page.locator("#messages .notice.refused")).to_contain_text(
        "Migration opens when Pre-Deployment is complete and signed off.")
    assert not ItemState.objects.get(pk=target.pk).checked

    # A lost connection says so instead of failing silently.
    page.context.set_offline(True)
    page.get_by_role("button", name=f"Tick: {first.item.text}").click()
    expect(page.locator("#messages")).to_contain_text("Could not reach the server")
    page.context.set_offline(False)


def test_lead_signs_off_a_complete_phase(new_page, users, runbook):
    pre = gated(runbook)[0]
    override_bound(runbook, pre)
    states = hand_states(runbook, pre)
    for st in states[:-1]:
        actions.tick(users["member"], st)
    page = log_in(new_page(), "lead")
    page.goto(runbook_url(runbook))
    page.get_by_role("button", name=f"Tick: {states[-1].item.text}").click()
    expect(item(page, states[-1])).to_contain_text("Done")
    page.get_by_label("Sign-off comment").fill("all backups verified")
    page.get_by_role("button", name=f"Sign off {pre.title}").click()
    phase = page.locator(f"#phase-{pre.pk}")
    expect(phase).to_contain_text("Signed off by lead")
    expect(phase).to_contain_text("all backups verified")
    migration = gated(runbook)[1]
    expect(page.locator(f"#phase-head-{migration.pk} .badge")).to_have_text("Open")
    expect(page.get_by_label("Sign-off comment")).to_have_count(0)


def test_another_browser_sees_a_tick_without_reload_and_keeps_a_typed_note(new_page, users,
                                                                          runbook):
    member = log_in(new_page(), "member")
    lead = log_in(new_page(), "lead")
    member.goto(runbook_url(runbook))
    lead.goto(runbook_url(runbook))
    first, second = hand_states(runbook, gated(runbook)[0])[:2]

    note = lead.get_by_label(f"Note on: {second.item.text}", exact=True)
    note.click()
    note.type("half-typed note")
    member.get_by_role("button", name=f"Tick: {first.item.text}").click()

    expect(item(lead, first)).to_contain_text("Done", timeout=10_000)
    expect(item(lead, first)).to_contain_text("by member")
    expect(note).to_have_value("half-typed note")
    expect(note).to_be_focused()
    note.press("End")
    note.type(" and the rest")
    lead.get_by_role("button", name=f"Add note on: {second.item.text}").click()
    expect(item(lead, second).locator(".notes")).to_contain_text("half-typed note and the rest")
    expect(item(member, second).locator(".notes")).to_contain_text("half-typed note and the rest",
                                                                   timeout=10_000)
    assert not lead.console_errors, lead.console_errors


def test_two_leads_approve_go_live(new_page, users, runbook, settings):
    settings.GO_LIVE_APPROVALS_REQUIRED = 2
    sign_off_through(runbook, 4, users["member"], users["lead"])
    lead = log_in(new_page(), "lead")
    lead.goto(f"/runbooks/{runbook.pk}/go-live/")
    lead.get_by_role("button", name="Request go-live").click()
    expect(lead.locator(".go-live-state")).to_have_text("Awaiting approval")
    expect(lead.get_by_role("button", name="Approve go-live")).to_have_count(0)  # own request

    # An admin who is not a lead is offered no Approve button (the server refuses it too).
    admin = log_in(new_page(), "admin")
    admin.goto(f"/runbooks/{runbook.pk}/go-live/")
    expect(admin.get_by_role("button", name="Approve go-live")).to_have_count(0)
    from tests.conftest import make_user

    make_user("lead3", "lead")
    for name in ("lead2", "lead3"):
        page = log_in(new_page(), name)
        page.goto(f"/runbooks/{runbook.pk}/go-live/")
        page.get_by_label("Comment").fill(f"{name} agrees")
        page.get_by_role("button", name="Approve go-live").click()
        expect(page.get_by_text(f"{name} approved")).to_be_visible()
    expect(page.locator(".go-live-state")).to_have_text("✔ Authorized")
    expect(page.locator("#missing-h + p")).to_have_text("Nothing: go-live is authorized.")
    screenshot(page, "go-live")


def test_auditor_reads_and_exports_but_cannot_write(new_page, users, runbook, tmp_path):
    actions.tick(users["member"], hand_states(runbook, gated(runbook)[0])[0], note="done by hand")
    page = log_in(new_page(), "auditor")
    page.goto(runbook_url(runbook))
    work = sum(len(states_of(runbook, p)) for p in gated(runbook))
    expect(page.locator("#status-block")).to_contain_text(f"1 / {work}")
    expect(page.locator("main [hx-post], main form[method=post]")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Tick|Sign off|Run)"))).to_have_count(0)

    # A forged write with a valid CSRF token from the page is refused by the server.
    token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRFToken"]
    target = hand_states(runbook, gated(runbook)[0])[1]
    response = page.request.post(f"/runbooks/{runbook.pk}/items/{target.pk}/tick/",
                                 headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status == 403
    assert "Auditors can read and export" in response.text()
    assert not ItemState.objects.get(pk=target.pk).checked

    page.get_by_role("link", name="History & exports").click()
    expect(page.locator(".chain")).to_contain_text("Verified")
    expect(page.locator("table.events")).to_contain_text("denied")
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Evidence pack")).click()
    path = tmp_path / "pack.zip"
    download_info.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert {f["name"] for f in manifest["files"]} == set(zf.namelist()) - {"manifest.json", "manifest.sig"}
        for f in manifest["files"]:
            assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"], f["name"]
        assert "done by hand" in zf.read("history.json").decode()


def test_screenshots_of_the_main_pages(new_page, users, runbook):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    st = hand_states(runbook, gated(runbook)[1])[0]
    actions.tick(users["member"], st, note="copied 1.2M rows")
    actions.add_note(users["lead"], st, "checked row counts")
    page = log_in(new_page(), "lead")
    screenshot(page, "runbook-list")
    page.goto(runbook_url(runbook))
    expect(page.locator("#status-block")).to_be_visible()
    expect(page.locator("#success-criteria")).to_be_visible()
    screenshot(page, "runbook")
    page.goto(f"/runbooks/{runbook.pk}/items/{st.pk}/")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    screenshot(page, "item-detail")
    page.goto(f"/runbooks/{runbook.pk}/history/")
    expect(page.locator(".chain")).to_contain_text("Verified")
    screenshot(page, "history")
    small = log_in(new_page(width=320, height=700), "member")
    small.goto(runbook_url(runbook))
    # The panels that load on their own are in place before measuring.
    expect(small.locator("#success-criteria")).to_be_visible()
    expect(small.locator("#monitoring")).to_be_visible()
    # Nothing overflows sideways at 320 px.
    assert small.evaluate("document.documentElement.scrollWidth") <= 320
    screenshot(small, "runbook-320px")


@pytest.mark.worker
def test_a_jobs_progress_appears_in_the_page(new_page, users, runbook, worker):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    code = ("import sys, time\n"
            "for i in range(1, 7):\n"
            "    print(f'creating table {i} of 6', flush=True); time.sleep(0.5)\n")
    CommandSpec.objects.create(name="init-db", argv=[sys.executable, "-c", code], timeout_seconds=60)
    state = ItemState.objects.get(runbook=runbook, item__text="`init_db.py` executed successfully")
    page = log_in(new_page(), "member")
    page.goto(runbook_url(runbook))
    page.get_by_role("button", name="Run: Run init-db").click()
    # The item names its job and links to the job's one panel in the phase.
    job_link = item(page, state).locator("a.job-link")
    expect(job_link).to_have_text("Job: Run init-db")
    panel = page.locator(f"{job_link.get_attribute('href')} .run-panel")
    expect(panel).to_have_attribute("aria-live", "polite")
    expect(panel.locator("progress")).to_be_visible()
    expect(panel.locator(".badge")).to_have_text(re.compile("Queued|Running"))
    expect(panel).to_contain_text("creating table", timeout=20_000)
    expect(item(page, state)).to_contain_text("Done", timeout=30_000)
    expect(panel.locator(".badge")).to_have_text("Succeeded")
    expect(item(page, state).locator(".job-links .badge")).to_have_text("Succeeded")
    run = TaskRun.objects.get(runbook=runbook, kind="command:init-db")
    assert run.state == TaskRun.SUCCEEDED
