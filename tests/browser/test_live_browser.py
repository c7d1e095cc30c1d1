"""Live pages over server-sent events, in Chromium, against the ASGI server as app-spec.yaml runs
it (gunicorn with uvicorn workers, PostgreSQL LISTEN/NOTIFY), started by the test as real
processes on the test database: a tick reaches another page within a second, again after its
server was killed and restarted; a change made through one web process reaches a page on
another; the go-live page shows the other lead's approval as it happens."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from checklist import actions
from checklist.models import ItemState
from tests.checklist.factories import gated, hand_states, sign_off_through

from .conftest import TIMEOUT_MS, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
SEEN_MS = 1_000  # the bound: another session shows a change within a second


class Server:
    """One web instance: `gunicorn mingus_deploy.asgi -k uvicorn_worker.UvicornWorker`."""

    def __init__(self, database_url, log_dir, port=None):
        self.database_url, self.log_dir = database_url, log_dir
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mingus_deploy.settings_test",
               "DATABASE_URL": self.database_url, "DATABASE_POOL": "true",
               "LIVE_HEARTBEAT_SECONDS": "2"}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        log = open(self.log_dir / f"gunicorn-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "mingus_deploy.asgi", "--worker-class",
             "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
             "--graceful-timeout", "2"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:  # the port answers once the worker has booted
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn on {self.port} did not start; log: "
                                   f"{(self.log_dir / f'gunicorn-{self.port}.log').read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self):
        """Cut every stream at once, as a crashed instance would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def servers(transactional_db, tmp_path):
    """servers(n) -> n web instances on the test database, stopped after the test."""
    started = []
    name = connection.settings_dict["NAME"]
    url = f"postgres://{connection.settings_dict['USER'] or 'root'}@127.0.0.1:5432/{name}"

    def start(n=1):
        for _ in range(n):
            started.append(Server(url, tmp_path).start())
        return started[-n:]

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def browse(chromium):
    """browse(server, user) -> a logged-in page on that server, in a context of its own."""
    contexts = []

    def make(server, username, width=1280):
        context = chromium.new_context(viewport={"width": width, "height": 900},
                                       base_url=server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.polls, page.console_errors, page.refused = [], [], []
        page.on("request", lambda r: "/poll/" in r.url and page.polls.append(r.url))
        # A failed load is reported by its response below (the favicon is no concern of ours).
        page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
                and page.console_errors.append(m.text))
        page.on("response", lambda r: r.status >= 400 and "favicon" not in r.url
                and page.refused.append(f"{r.status} {r.url}"))
        return log_in(page, username)

    yield make
    for context in contexts:
        context.close()


def item(page, state):
    return page.locator(f"#item-{state.pk}")


def open_live(page, url):
    page.goto(url)
    expect(page.locator("#live")).to_have_attribute("data-live", "open")


def test_two_pages_see_a_tick_within_a_second_and_again_after_the_stream_is_cut(
        servers, browse, users, runbook, tmp_path):
    (server,) = servers(1)
    member, lead = browse(server, "member"), browse(server, "lead")
    first, second, third = hand_states(runbook, gated(runbook)[0])[:3]
    for page in (member, lead):
        open_live(page, f"/runbooks/{runbook.pk}/")
    note = lead.get_by_label(f"Note on: {first.item.text}", exact=True)
    note.click()
    note.type("typed while others work")
    with member.expect_response(lambda r: r.url.endswith(f"/items/{first.pk}/tick/")) as tick:
        member.get_by_role("button", name=f"Tick: {first.item.text}").click()
    expect(item(member, first)).to_contain_text("by member")  # the write is done
    assert "status-block" not in tick.value.text()  # the row alone: its stream is open
    # Over the stream, within a second, into the very row the lead is typing in.
    expect(item(lead, first)).to_contain_text("by member", timeout=SEEN_MS)
    expect(lead.locator("#status-block")).to_contain_text("Work: 1 / 112", timeout=SEEN_MS)
    expect(note).to_have_value("typed while others work")
    expect(note).to_be_focused()
    # The writer's page was answered with the row alone (its stream is open): its own counts
    # come over the stream too.
    expect(member.locator("#status-block")).to_contain_text("Work: 1 / 112", timeout=SEEN_MS)
    expect(member.locator(f"#phase-head-{first.item.group.phase_id} .count")).to_contain_text(
        "1 / ", timeout=SEEN_MS)

    # Cut every stream (the server dies); a change lands meanwhile; the server comes back on its
    # port: both pages reconnect and catch up from their revision, then see new ticks as fast.
    server.kill()
    actions.tick(users["member"], ItemState.objects.get(pk=second.pk))
    server.start()
    for page in (member, lead):
        expect(item(page, second)).to_contain_text("by member", timeout=10_000)
        expect(page.locator("#live")).to_have_attribute("data-live", "open")
    member.get_by_role("button", name=f"Tick: {third.item.text}").click()
    expect(item(member, third)).to_contain_text("by member")
    expect(item(lead, third)).to_contain_text("by member", timeout=SEEN_MS)
    expect(lead.locator("#status-block")).to_contain_text("Work: 3 / 112", timeout=SEEN_MS)
    expect(note).to_have_value("typed while others work")
    screenshot(lead, "live-after-reconnect")
    # Nothing was refused; the console mentions only the cut (the extension logs its error).
    assert not lead.refused, lead.refused
    assert set(lead.console_errors) <= {"[object Event]"}, lead.console_errors


def test_a_change_through_one_web_process_reaches_a_page_on_another(servers, browse, users,
                                                                     runbook):
    one, two = servers(2)
    member, lead = browse(one, "member"), browse(two, "lead")
    for page in (member, lead):
        open_live(page, f"/runbooks/{runbook.pk}/")
    first = hand_states(runbook, gated(runbook)[0])[0]
    polls_before = len(lead.polls)
    lead.evaluate("document.querySelector('#runbook-body').dataset.mark = 'first load'")
    member.get_by_role("button", name=f"Tick: {first.item.text}").click()
    expect(item(member, first)).to_contain_text("by member")
    expect(item(lead, first)).to_contain_text("by member", timeout=SEEN_MS)
    # Pushed, not polled: the lead's page asked for nothing while its stream was open.
    assert len(lead.polls) == polls_before
    # A note typed on the other instance comes back the same way.
    lead.get_by_label(f"Note on: {first.item.text}", exact=True).fill("seen on instance two")
    lead.get_by_role("button", name=f"Add note on: {first.item.text}").click()
    expect(item(lead, first).locator(".notes")).to_contain_text("seen on instance two")
    expect(item(member, first).locator(".notes")).to_contain_text("seen on instance two",
                                                                  timeout=SEEN_MS)
    for page in (member, lead):
        assert not page.console_errors and not page.refused, (page.console_errors, page.refused)
    # Rows were swapped, never the whole body (it still carries the mark set on first load).
    assert lead.evaluate("document.querySelector('#runbook-body').dataset.mark") == "first load"


def test_the_go_live_page_shows_the_other_leads_approval_live(servers, browse, users, runbook,
                                                              settings):
    sign_off_through(runbook, 4, users["member"], users["lead"])
    actions.request_go_live(users["lead"], runbook, "all signed off")
    one, two = servers(2)
    watcher = browse(one, "lead")
    approver = browse(two, "lead2")
    for page in (watcher, approver):
        open_live(page, f"/runbooks/{runbook.pk}/go-live/")
    expect(watcher.locator("#approvals-h")).to_contain_text("Approvals (0 of")
    approver.get_by_label("Comment").fill("lead2 agrees")
    approver.get_by_role("button", name="Approve go-live").click()
    expect(approver.get_by_text("lead2 approved")).to_be_visible()
    expect(watcher.get_by_text("lead2 approved")).to_be_visible(timeout=SEEN_MS)
    expect(watcher.locator("#approvals-h")).to_contain_text("Approvals (1 of",
                                                            timeout=SEEN_MS)
    screenshot(watcher, "go-live-live")


def test_a_sign_off_reaches_another_page_as_deltas_moving_the_phase_in_focus(
        servers, browse, users, runbook):
    """The other page is sent the heads and the phases' order, not the body: the signed-off
    phase shows it and collapses, the next phase comes first and open with its items loaded."""
    pre, migration = gated(runbook)[:2]
    from tests.checklist.factories import complete_phase

    complete_phase(runbook, pre, users["member"])
    (server,) = servers(1)
    lead, member = browse(server, "lead"), browse(server, "member")
    for page in (lead, member):
        open_live(page, f"/runbooks/{runbook.pk}/")
    member.evaluate("document.querySelector('#runbook-body').dataset.mark = 'first load'")
    expect(member.locator("section.phase").first).to_have_id(f"phase-{pre.pk}")
    # A reader who closed the phase in focus keeps it closed while others work in it.
    member.locator(f"#phase-box-{pre.pk} > summary").click()
    expect(member.locator(f"#phase-box-{pre.pk}")).not_to_have_attribute("open", "")
    noted = hand_states(runbook, pre)[0]
    actions.add_note(users["lead"], ItemState.objects.get(pk=noted.pk), "checked twice")
    expect(item(member, noted)).to_contain_text("checked twice", timeout=SEEN_MS)
    expect(member.locator(f"#phase-box-{pre.pk}")).not_to_have_attribute("open", "")
    lead.get_by_role("button", name=f"Sign off {pre.title}").click()
    expect(lead.locator(f"#phase-head-{pre.pk}")).to_contain_text("Signed off by lead")
    expect(member.locator(f"#phase-head-{pre.pk}")).to_contain_text("Signed off by lead",
                                                                    timeout=SEEN_MS)
    expect(member.locator("section.phase").first).to_have_id(f"phase-{migration.pk}")
    expect(member.locator(f"#phase-box-{migration.pk}")).to_have_attribute("open", "")
    first_item = hand_states(runbook, migration)[0]
    expect(item(member, first_item)).to_be_visible()
    expect(member.locator(f"#phase-box-{pre.pk}")).not_to_have_attribute("open", "")
    expect(member.locator(f"#phase-{pre.pk}")).to_have_class(re.compile(r"\bphase-signed-off\b"))
    expect(member.locator("#phase-nav")).to_contain_text("(now)")
    # The member can work the newly open phase from there, and the body was never replaced.
    member.get_by_role("button", name=f"Tick: {first_item.item.text}").click()
    expect(item(member, first_item)).to_contain_text("by member")
    assert member.evaluate("document.querySelector('#runbook-body').dataset.mark") == "first load"
    assert not member.refused and not member.console_errors, (member.refused,
                                                              member.console_errors)


# Counts the run panels' poll attempts in an attribute (the CSP forbids the eval that
# wait_for_function would need; a locator can wait on an attribute).
PANEL_POLLS = """
document.addEventListener("htmx:beforeRequest", (e) => {
  if (!e.detail.elt.matches(".run-panel")) return;
  const root = document.documentElement;
  root.dataset.panelPolls = String(Number(root.dataset.panelPolls || 0) + 1);
});
"""


def test_item_run_and_job_panels_follow_a_run_and_a_note_over_the_stream_not_polls(
        servers, browse, users, runbook):
    """A run's progress (written by its worker, here by the test as the worker would) reaches
    the runbook page's job panel, the item page and the run page over the stream; a note made
    by someone else reaches the item page; no run panel polls while the stream is open."""
    from django.utils.text import slugify

    from checklist import changes, jobs
    from checklist.models import TaskRun

    pre = gated(runbook)[0]
    bound = jobs.runbook_bindings(runbook)
    state = next(st for st in ItemState.objects.filter(runbook=runbook, item__group__phase=pre)
                 .order_by("item__group__order", "item__order")
                 if "backup" in bound.get(st.item_id, ()))
    run = TaskRun.objects.create(runbook=runbook, kind="backup", state=TaskRun.RUNNING,
                                 started_by=users["member"], step="copying accounts")
    run.items.set(jobs.items_for(runbook, "backup"))
    (server,) = servers(1)
    board, detail, run_page = (browse(server, "member") for _ in range(3))
    panel = f"#job-{pre.pk}-{slugify('backup')} .run-panel"
    for page, url in ((board, f"/runbooks/{runbook.pk}/"),
                      (detail, f"/runbooks/{runbook.pk}/items/{state.pk}/"),
                      (run_page, f"/runbooks/{runbook.pk}/runs/{run.pk}/")):
        page.run_details = []
        page.on("request", lambda r, page=page: f"/runs/{run.pk}/" in r.url
                and r.resource_type != "document" and page.run_details.append(r.url))
        page.add_init_script(PANEL_POLLS)
        open_live(page, url)
    expect(board.locator(panel)).to_contain_text("Step: copying accounts")
    # Each page's panel tried its 2 s poll (htmx fired it), and live.js kept it from the wire.
    for page in (board, detail, run_page):
        expect(page.locator("html")).to_have_attribute("data-panel-polls", re.compile(r"^[1-9]"))

    TaskRun.objects.filter(pk=run.pk).update(step="copying events", rows=1200)
    changes.run_changed(run)
    expect(board.locator(panel)).to_contain_text("Step: copying events", timeout=SEEN_MS)
    expect(detail.locator(f"#run-detail-{run.pk}")).to_contain_text("Step: copying events",
                                                                   timeout=SEEN_MS)
    expect(run_page.locator(f"#run-detail-{run.pk}")).to_contain_text("1200 rows",
                                                                     timeout=SEEN_MS)
    actions.add_note(users["lead"], ItemState.objects.get(pk=state.pk), "lead watched the backup")
    expect(detail.locator("#item-body .notes")).to_contain_text("lead watched the backup",
                                                                timeout=SEEN_MS)
    TaskRun.objects.filter(pk=run.pk).update(state=TaskRun.SUCCEEDED, step="done")
    changes.run_changed(run)
    expect(run_page.locator(f"#run-detail-{run.pk} .badge")).to_have_text("Succeeded",
                                                                          timeout=SEEN_MS)
    expect(board.locator(f"{panel} .badge")).to_have_text("Succeeded", timeout=SEEN_MS)
    for page in (board, detail, run_page):
        assert not page.run_details, page.run_details  # pushed, never polled
        assert not page.refused and not page.console_errors, (page.refused, page.console_errors)


def test_without_a_stream_the_go_live_page_polls_and_shows_the_other_leads_approval(
        new_page, users, runbook):
    """Under WSGI (the test server) the stream answers 204: the go-live page falls back to its
    poll and still shows what another lead did."""
    sign_off_through(runbook, 4, users["member"], users["lead"])
    actions.request_go_live(users["lead"], runbook, "all signed off")
    page = new_page()
    refused = []
    page.on("response", lambda r: r.status >= 400 and "favicon" not in r.url
            and refused.append(f"{r.status} {r.url}"))
    log_in(page, "lead")
    page.goto(f"/runbooks/{runbook.pk}/go-live/")
    expect(page.locator("#approvals-h")).to_contain_text("Approvals (0 of")
    with page.expect_request(re.compile(r"/go-live/poll/\?rev=\d+")):
        actions.approve_go_live(users["lead2"], runbook, "lead2 agrees")
    expect(page.get_by_text("lead2 approved")).to_be_visible(timeout=10_000)
    expect(page.locator("#approvals-h")).to_contain_text("Approvals (1 of")
    assert not refused, refused
