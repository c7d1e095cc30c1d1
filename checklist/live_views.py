"""The live stream of a runbook: server-sent events for the htmx SSE extension.

`GET /runbooks/<id>/events/?page=runbook&rev=N` answers with a stream that stays open: an event
(id = the revision it brings the page to) whenever the runbook changes, carrying htmx
out-of-band swaps of only what changed (checklist.deltas), and a ": ping" comment every
LIVE_HEARTBEAT_SECONDS so proxies keep it open. A reconnecting page resumes from its revision
(the Last-Event-ID header, or `rev`). Who may read the runbook is checked once, on connect, as
for the page. The stream holds no database connection: it waits on this process's hub
(checklist.live), and the renders it needs borrow one and give it back.

Only an ASGI server streams: under WSGI (the test suite's live_server, a sync gunicorn) the
stream answers 204, which tells EventSource to stop, and the page keeps polling.
"""
import asyncio
import functools
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import (HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed,
                         StreamingHttpResponse)

from . import actions, deltas, live, rules
from .models import ItemState, Runbook, TaskRun

log = logging.getLogger(__name__)

# page -> (render, the query parameter naming the page's object, if any)
PAGES = {"runbook": (deltas.runbook_event, None), "go-live": (deltas.go_live_event, None),
         "item": (deltas.item_event, "state"), "run": (deltas.run_event, "run")}


def streams(request):
    """Whether this request is served by a server that streams (templates ask it)."""
    return isinstance(request, ASGIRequest)


async def runbook_events(request, runbook_id):
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    if not streams(request):
        return HttpResponse(status=204)
    page = request.GET.get("page", "runbook")
    if page not in PAGES:
        return HttpResponseBadRequest(f"'page' is one of {', '.join(PAGES)}.",
                                      content_type="text/plain")
    since = _since(request)
    if since is None:
        return HttpResponseBadRequest("'rev' (or Last-Event-ID) must be a revision number.",
                                      content_type="text/plain")
    render, param = PAGES[page]
    pk = None
    if param:
        pk = request.GET.get(param, "")
        if not pk.isdigit() or len(pk) > 18:
            return HttpResponseBadRequest(f"'{param}' must be an id.", content_type="text/plain")
        pk = int(pk)
    user = await request.auser()
    opened = await sync_to_async(_open)(user, runbook_id, param, pk)
    if isinstance(opened, HttpResponse):
        return opened
    current, key = opened
    if page in ("go-live", "item", "run"):
        key = (key, user.pk, pk)  # the Approve button is each lead's own; pages of one thing
    hub = live.hub()
    # A page claiming a revision the runbook never had is from another database: it reloads.
    sub = hub.subscribe(runbook_id, since if since <= current else 0, latest=current)
    render = functools.partial(render, user)
    if pk is not None:
        render = functools.partial(_with_pk, render, pk)
    response = StreamingHttpResponse(_events(hub, sub, page, key, render),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy would hold events back
    return response


def _since(request):
    values = [request.headers.get("Last-Event-ID", ""), request.GET.get("rev", "")]
    revisions = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if not value.isdigit() or len(value) > 18:
            return None
        revisions.append(int(value))
    return max(revisions, default=0)


def _with_pk(render, pk, runbook_id, revision):
    return render(runbook_id, revision, pk)


def _open(user, runbook_id, param=None, pk=None):
    """(current revision, render key) when the user may read the runbook, else the refusal.
    Runs in the request's thread, whose database connection is closed before streaming."""
    try:
        if not user.is_authenticated:
            return HttpResponse("Log in to follow this runbook.", status=403,
                                content_type="text/plain")
        decision = rules.can_read(user)
        if not decision:
            try:
                actions.deny(user, "read", decision)
            except actions.Refused as refused:
                return HttpResponse(str(refused), status=refused.status,
                                    content_type="text/plain")
        current = Runbook.objects.filter(pk=runbook_id).values_list("revision", flat=True).first()
        if current is None:
            return HttpResponse("No such runbook.", status=404, content_type="text/plain")
        model = {"state": ItemState, "run": TaskRun}.get(param)
        if model is not None and not model.objects.filter(pk=pk, runbook_id=runbook_id).exists():
            return HttpResponse(f"No such {param} in this runbook.", status=404,
                                content_type="text/plain")
        return current, deltas.role_key(user)
    finally:
        # The stream may stay open for hours: it must not keep this request's connection.
        connection.close()


def _render(render, runbook_id, revision):
    try:
        return render(runbook_id, revision)
    finally:
        connection.close()


def event(revision, html):
    """One server-sent event: its id is the revision it brings the page to. Without html it
    still moves the page's Last-Event-ID on (EventSource dispatches nothing)."""
    data = "".join(f"data: {line}\n" for line in html.splitlines() if line.strip())
    return f"id: {revision}\n{data}\n".encode()


async def _events(hub, sub, page, key, render):
    behind = 0
    try:
        # How long EventSource waits before reconnecting by itself after a cut.
        yield f"retry: {settings.LIVE_RETRY_MS}\n\n".encode()
        while True:
            if not await sub.wait(settings.LIVE_HEARTBEAT_SECONDS):
                yield b": ping\n\n"
                continue
            revision, text = await hub.shared(
                (page, sub.runbook_id, sub.revision, key),
                functools.partial(_render_event, render, sub.runbook_id, sub.revision))
            if revision > sub.revision:
                sub.revision, behind = revision, 0
                yield text
                continue
            # A shared render that began before the newest revision committed: render again
            # (briefly later); give up on a revision that never shows.
            behind += 1
            if behind > 20:
                sub.latest, behind = sub.revision, 0
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        raise  # the client went away
    finally:
        hub.unsubscribe(sub)


async def _render_event(render, runbook_id, revision):
    # A thread of the shared pool, not the request's own: the render outlives no client.
    revision, html = await sync_to_async(_render, thread_sensitive=False)(
        render, runbook_id, revision)
    return revision, event(revision, html)
