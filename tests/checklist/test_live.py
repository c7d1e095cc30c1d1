"""The live machinery without a browser: the hub's fan-out and shared renders, the watchers
(PostgreSQL LISTEN/NOTIFY, the polling one), what each revision records, what an event carries
(only what changed, never the body), and the stream's own checks (who, which revision)."""
import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from checklist import actions, changes, deltas, live, live_views
from checklist.audit import AuditEvent
from checklist.models import ItemState, Runbook, RunbookChange, TaskRun

from .factories import complete_phase, gated, hand_states, states_of


def run(coro):
    # A thread of its own: Playwright's sync API may hold an event loop in the main thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, 60)).result()


# --- fan-out -------------------------------------------------------------------------------


def test_a_change_wakes_every_subscriber_of_its_runbook_and_only_them():
    async def main():
        hub = live.Hub(watch=False)
        mine = [hub.subscribe(1, revision=4) for _ in range(50)]
        other = hub.subscribe(2, revision=4)
        hub.publish(1, 5)
        hub.publish(1, 6)  # two changes before anyone looked: one wake-up, at the newest
        woken = await asyncio.gather(*(s.wait(1) for s in mine))
        assert woken == [True] * 50 and {s.latest for s in mine} == {6}
        assert await other.wait(0.05) is False
        for s in mine:
            hub.unsubscribe(s)
        assert list(hub.subscribers) == [2]

    run(main())


def test_subscribers_asking_for_the_same_render_share_one():
    calls = []

    async def render():
        calls.append(1)
        await asyncio.sleep(0.05)
        return "event"

    async def main():
        hub = live.Hub(watch=False)
        same = await asyncio.gather(*(hub.shared(("runbook", 1, 5, ("member",)), render)
                                      for _ in range(50)))
        other = await hub.shared(("runbook", 1, 5, ("lead",)), render)
        again = await hub.shared(("runbook", 1, 5, ("member",)), render)  # later: anew
        return same, other, again

    same, other, again = run(main())
    assert same == ["event"] * 50 and other == again == "event"
    assert len(calls) == 3


# --- watchers ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_listening_process_hears_a_committed_write(users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]

    async def main():
        # Two hubs, two LISTEN connections: two web instances.
        hubs = [live.Hub(), live.Hub()]
        subs = [h.subscribe(runbook.pk, revision=0) for h in hubs]
        await asyncio.gather(*(asyncio.wait_for(h.listening.wait(), 10) for h in hubs))
        await sync_to_async(actions.tick)(users["member"], st)
        assert all(await asyncio.gather(*(s.wait(5) for s in subs)))
        for h in hubs:
            await h.stop()
        return [s.latest for s in subs]

    latest = run(main())
    assert latest == [Runbook.objects.get(pk=runbook.pk).revision] * 2


@pytest.mark.django_db(transaction=True)
def test_a_refused_write_notifies_nobody(users, runbook):
    locked = hand_states(runbook, gated(runbook)[1])[0]  # Migration is locked

    async def main():
        hub = live.Hub()
        sub = hub.subscribe(runbook.pk, revision=0)
        await asyncio.wait_for(hub.listening.wait(), 10)
        with pytest.raises(actions.Refused):
            await sync_to_async(actions.tick)(users["member"], locked)
        woken = await sub.wait(1)
        await hub.stop()
        return woken

    assert run(main()) is False


@pytest.mark.django_db(transaction=True)
def test_the_polling_watcher_reads_revisions_once_per_interval_for_all_pages(
        users, runbook, monkeypatch):
    reads = []
    plain = live._revisions

    def counted(ids):
        reads.append(sorted(ids))
        return plain(ids)

    monkeypatch.setattr(live, "_revisions", counted)
    st = hand_states(runbook, gated(runbook)[0])[0]

    async def main():
        hub = live.Hub(poll_interval=0.05)
        subs = [hub.subscribe(runbook.pk, revision=0) for _ in range(20)]
        await asyncio.wait_for(hub.listening.wait(), 10)
        await sync_to_async(actions.tick)(users["member"], st)
        assert all(await asyncio.gather(*(s.wait(5) for s in subs)))
        await hub.stop()

    run(main())
    # One query per interval for the process, naming the runbook once, however many pages.
    assert reads and all(ids == [runbook.pk] for ids in reads)
    assert len(reads) < 200


# --- what each revision records ------------------------------------------------------------


@pytest.mark.django_db
def test_each_write_records_what_its_revision_changed(users, runbook):
    pre, migration = gated(runbook)[:2]
    st = hand_states(runbook, pre)[0]
    start = Runbook.objects.get(pk=runbook.pk).revision
    actions.tick(users["member"], st)
    actions.add_note(users["member"], st, "checked twice")
    what = changes.since(runbook.pk, start)
    assert what.state_ids == [st.pk] and what.kinds == {RunbookChange.ITEMS}
    assert what.revision == start + 2

    complete_phase(runbook, pre, users["member"])
    before = Runbook.objects.get(pk=runbook.pk).revision
    actions.sign_off(users["lead"], runbook, pre, "ok")
    what = changes.since(runbook.pk, before)
    assert what.phase_ids == [pre.pk, migration.pk]  # signed off, and the one it opens


@pytest.mark.django_db
def test_a_revision_without_a_record_or_too_far_back_cannot_be_told(users, runbook):
    start = Runbook.objects.get(pk=runbook.pk).revision
    changes.bump(runbook.pk)  # as an admin edit does: a revision, no record
    assert changes.since(runbook.pk, start) is None
    assert changes.since(runbook.pk, start + 1).state_ids == []  # caught up
    now = Runbook.objects.get(pk=runbook.pk).revision
    assert changes.since(runbook.pk, now - changes.KEEP - 1) is None


# --- what an event carries -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_tick_sends_its_row_headings_and_status_never_the_body(users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    start = Runbook.objects.get(pk=runbook.pk).revision
    actions.tick(users["member"], st)
    revision, html = deltas.runbook_event(users["lead"], runbook.pk, start)
    assert revision == start + 1
    assert html.count('id="item-') == 1
    assert f'<li class="item checked" id="item-{st.pk}" hx-swap="outerHTML" hx-swap-oob="true">' in html
    assert f'id="group-h-{st.item.group_id}" hx-swap-oob="true"' in html
    assert f'id="phase-head-{st.item.group.phase_id}" hx-swap-oob="true"' in html
    assert 'id="status-block"' in html and "Work: <strong>1 / " in html
    assert f'id="runbook-rev" name="rev" value="{revision}"' in html
    assert 'id="runbook-body"' not in html
    assert len(html) < 10_000, len(html)
    # The auditor's rows offer no buttons; the member's do.
    _, audited = deltas.runbook_event(users["auditor"], runbook.pk, start)
    assert "Untick" not in audited and "Untick" in html


@pytest.mark.django_db
def test_a_sign_off_sends_the_heads_and_the_phase_order_not_the_body(users, runbook):
    """The phase in focus moves (first and open): the event names the new order and the phases
    whose state changed (live.js moves the sections and reloads those lists), with every phase
    head, the navigator and the status block; a third of the body's bytes at most."""
    from django.template.loader import render_to_string

    from checklist import pages

    pre, migration = gated(runbook)[:2]
    complete_phase(runbook, pre, users["member"])
    start = Runbook.objects.get(pk=runbook.pk).revision
    actions.sign_off(users["lead"], runbook, pre, "ok")
    revision, html = deltas.runbook_event(users["member"], runbook.pk, start)
    assert 'id="runbook-body"' not in html and 'id="item-' not in html
    order = re.search(r'<div id="phase-order" hidden data-focus="(\d+)" data-order="([\d ]+)" '
                      r'data-states="([^"]+)" data-reload="([\d ]*)" hx-swap-oob="true">', html)
    assert order, html[-600:]
    focus, ids, states, reload = order.groups()
    assert int(focus) == migration.pk and ids.split()[0] == str(migration.pk)
    assert f"{pre.pk}:signed-off" in states and f"{migration.pk}:open" in states
    assert set(map(int, reload.split())) >= {pre.pk, migration.pk}
    for phase in runbook.template.phases.all():
        assert f'id="phase-head-{phase.pk}" hx-swap-oob="true"' in html
    assert 'id="phase-nav"' in html and 'id="status-block"' in html
    assert f'id="runbook-rev" name="rev" value="{revision}"' in html
    runbook.refresh_from_db()
    body = render_to_string("checklist/_runbook_body.html",
                            pages.runbook_context(users["member"], runbook))
    assert len(html) * 3 < len(body), (len(html), len(body))


@pytest.mark.django_db
def test_a_withdrawal_sends_the_unticked_row_the_notice_and_the_order(users, runbook):
    pre, migration = gated(runbook)[:2]
    complete_phase(runbook, pre, users["member"])
    actions.sign_off(users["lead"], runbook, pre, "ok")
    start = Runbook.objects.get(pk=runbook.pk).revision
    st = ItemState.objects.get(pk=hand_states(runbook, pre)[0].pk)
    actions.untick(users["member"], st, confirm=True, reason="the backup was corrupt")
    _, html = deltas.runbook_event(users["lead"], runbook.pk, start)
    assert 'id="runbook-body"' not in html
    assert html.count('id="item-') == 1 and f'id="item-{st.pk}" hx-swap="outerHTML" hx-swap-oob="true"' in html
    assert 'id="withdrawal-banner"' in html and "the backup was corrupt" in html
    assert f'data-focus="{pre.pk}"' in html


@pytest.mark.django_db
def test_a_run_moving_sends_its_job_panel_so_the_panel_need_not_poll(users, runbook):
    from django.utils.text import slugify

    from checklist import jobs

    pre = gated(runbook)[0]
    bound = jobs.runbook_bindings(runbook)
    states = [st for st in states_of(runbook, pre) if "backup" in bound.get(st.item_id, ())]
    assert states
    run = TaskRun.objects.create(runbook=runbook, kind="backup", state=TaskRun.RUNNING,
                                 step="copying accounts")
    run.items.set([st.item for st in states])
    start = Runbook.objects.get(pk=runbook.pk).revision
    changes.run_changed(run)
    _, html = deltas.runbook_event(users["member"], runbook.pk, start)
    anchor = f"job-{pre.pk}-{slugify('backup')}"
    assert html.count(f'id="{anchor}" hx-swap-oob="true"') == 1
    assert "Step: copying accounts" in html and f"Run #{run.pk}" in html
    TaskRun.objects.filter(pk=run.pk).update(state=TaskRun.SUCCEEDED, step="done")
    changes.run_changed(run)
    _, html = deltas.runbook_event(users["member"], runbook.pk, start + 1)
    panel = html[html.index(f'id="{anchor}"'):]
    assert "Succeeded" in panel and 'hx-trigger="every' not in panel.split('id="item-')[0]


@pytest.mark.django_db
def test_a_page_the_records_cannot_bring_up_to_date_gets_the_body(users, runbook):
    start = Runbook.objects.get(pk=runbook.pk).revision
    changes.bump(runbook.pk)
    revision, html = deltas.runbook_event(users["member"], runbook.pk, start)
    assert revision == start + 1
    assert html.startswith('<div hx-swap-oob="true" id="runbook-body">')


@pytest.mark.django_db
def test_the_item_page_gets_its_body_when_its_item_changed_and_nothing_otherwise(users, runbook):
    mine, other = hand_states(runbook, gated(runbook)[0])[:2]
    start = Runbook.objects.get(pk=runbook.pk).revision
    actions.tick(users["member"], other)
    revision, html = deltas.item_event(users["member"], runbook.pk, start, mine.pk)
    assert (revision, html) == (start + 1, "")
    actions.add_note(users["lead"], mine, "looked at it")
    revision, html = deltas.item_event(users["member"], runbook.pk, start + 1, mine.pk)
    assert revision == start + 2 and html.startswith('<div hx-swap-oob="true" id="item-body">')
    assert "looked at it" in html


@pytest.mark.django_db
def test_the_run_page_gets_its_body_when_its_run_moved(users, runbook):
    run = TaskRun.objects.create(runbook=runbook, kind="backup", state=TaskRun.RUNNING,
                                 step="copying accounts", log="line one")
    other = TaskRun.objects.create(runbook=runbook, kind="assess", state=TaskRun.RUNNING)
    start = Runbook.objects.get(pk=runbook.pk).revision
    changes.run_changed(other)
    assert deltas.run_event(users["member"], runbook.pk, start, run.pk) == (start + 1, "")
    changes.run_changed(run)
    _, html = deltas.run_event(users["member"], runbook.pk, start + 1, run.pk)
    assert html.startswith('<div hx-swap-oob="true" id="run-body">')
    assert "copying accounts" in html and "Full log" not in html  # the tail, while it runs


@pytest.mark.django_db
def test_the_go_live_page_skips_changes_it_does_not_show(users, runbook):
    start = Runbook.objects.get(pk=runbook.pk).revision
    actions.set_contact(users["lead"], runbook, runbook.template.contact_fields.first(), "Ann")
    assert deltas.go_live_event(users["lead"], runbook.pk, start) == (start + 1, "")
    actions.tick(users["member"], hand_states(runbook, gated(runbook)[0])[0])
    _, html = deltas.go_live_event(users["lead"], runbook.pk, start + 1)
    assert html.startswith('<div hx-swap-oob="true" id="go-live-body">')
    assert "Work: <strong>1 / " in html


def test_an_event_is_one_sse_message_whose_id_is_the_revision():
    assert live_views.event(8, "") == b"id: 8\n\n"  # moves Last-Event-ID, dispatches nothing
    text = live_views.event(7, '<li id="item-1">\n\n  <span>x</span>\n</li>')
    assert text == b'id: 7\ndata: <li id="item-1">\ndata:   <span>x</span>\ndata: </li>\n\n'


# --- the stream ----------------------------------------------------------------------------


def test_under_wsgi_the_stream_answers_204_and_the_page_polls(client, users, runbook):
    client.force_login(users["member"], backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(reverse("runbook-events", args=[runbook.pk]))
    assert response.status_code == 204
    page = client.get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert "sse-connect" not in page and 'class="poller"' in page


async def _first_events(client, url, count, **kwargs):
    response = await client.get(url, **kwargs)
    if not response.streaming:
        return response, []
    chunks, stream = [], response.streaming_content
    try:
        while len(chunks) < count:
            chunks.append(await asyncio.wait_for(anext(stream), 10))
    finally:
        await stream.aclose()
    return response, chunks


@pytest.mark.django_db(transaction=True)
def test_the_stream_checks_who_reads_and_catches_up_from_the_last_event_id(users, runbook):
    st = hand_states(runbook, gated(runbook)[0])[0]
    start = Runbook.objects.get(pk=runbook.pk).revision
    actions.tick(users["member"], st)
    url = reverse("runbook-events", args=[runbook.pk])

    async def as_user(name, **kwargs):
        client = AsyncClient()
        if name:
            await client.aforce_login(users[name],
                                      backend="django.contrib.auth.backends.ModelBackend")
        return await _first_events(client, url, 2, **kwargs)

    response, _ = run(as_user(None))
    assert response.status_code == 403
    denied = AuditEvent.objects.filter(action="denied").count()
    response, _ = run(as_user("nobody"))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="denied").count() == denied + 1  # on the record
    response, _ = run(as_user("member", query_params={"rev": "abc"}))
    assert response.status_code == 400

    response, (retry, caught_up) = run(as_user("auditor", headers={"Last-Event-ID": str(start)}))
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert retry.startswith(b"retry: ")
    assert caught_up.startswith(f"id: {start + 1}\n".encode())
    assert f'id="item-{st.pk}"'.encode() in caught_up


@pytest.mark.django_db
def test_without_a_stream_the_go_live_page_polls_for_its_body(client, users, runbook):
    from .factories import sign_off_through

    sign_off_through(runbook, 4, users["member"], users["lead"])
    client.force_login(users["lead2"])
    page = client.get(reverse("go-live", args=[runbook.pk])).content.decode()
    shown = Runbook.objects.get(pk=runbook.pk).revision
    poll = reverse("go-live-poll", args=[runbook.pk])
    assert f'hx-get="{poll}?rev={shown}" hx-trigger="every 3s"' in page
    assert client.get(f"{poll}?rev={shown}", HTTP_HX_REQUEST="true").status_code == 204
    actions.request_go_live(users["lead"], runbook, "all signed off")
    body = client.get(f"{poll}?rev={shown}", HTTP_HX_REQUEST="true").content.decode()
    assert body.startswith('<div id="go-live-body">') and "Approve go-live" in body
    assert f'{poll}?rev={shown + 1}"' in body
