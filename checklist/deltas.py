"""What a live page is sent when its runbook changes: only what changed, as htmx out-of-band
swaps (elements carrying hx-swap-oob, swapped by id).

On the runbook page that is the changed item rows, their group headings, the headings of their
phases, the status block, the job panels of a run that moved, the contacts when they changed, and
the page's revision (#runbook-sync). A sign-off or withdrawal sends every phase head, the
navigator, the withdrawal notice and the phases' order instead (pages.render_phase_change; the
page moves its sections itself). Only when the records cannot say what changed (an admin edit, a
page too far behind: changes.since is None) is the whole body sent.

Renders are plain functions of (viewer, runbook, what changed): the same for every viewer with
the same roles, which is what lets checklist.live render once and send to many.
"""
import re

from django.template.loader import render_to_string

from . import changes, pages
from .models import ItemState, Runbook, RunbookChange

_FIRST_TAG = re.compile(r"^(<[a-zA-Z][\w-]*)")


def oob(html):
    """The element `html` starts with, marked to be swapped out of band (by its id)."""
    html = html.strip()
    if 'hx-swap-oob="' in html[:html.find(">")]:
        return html
    return _FIRST_TAG.sub(r'\1 hx-swap-oob="true"', html, count=1)


def role_key(user):
    """Viewers with the same key see the same runbook page (checklist.pages.viewer_key)."""
    return pages.viewer_key(user)


def runbook_event(user, runbook_id, revision):
    """(revision, html) for a runbook page at `revision`: what changed since, or the body."""
    runbook = Runbook.objects.select_related("template").get(pk=runbook_id)
    what = changes.since(runbook_id, revision, current=runbook.revision)
    if what is None:  # the records cannot say what changed
        return runbook.revision, oob(render_to_string(
            "checklist/_runbook_body.html", pages.runbook_context(user, runbook)))
    if RunbookChange.PHASES in what.kinds:
        # A phase signed off or withdrawn: the heads, navigator, status and the phases' order
        # (the phase in focus moves first and opens; live.js reloads the moved phases' items).
        html = pages.render_phase_change(user, runbook, what.phase_ids, what.state_ids)
        if RunbookChange.CONTACTS in what.kinds:
            html += "\n" + oob(render_to_string("checklist/_contacts.html",
                                                pages.contacts_context(user, runbook)))
        return runbook.revision, html
    return runbook.revision, runbook_delta(user, runbook, what)


def runbook_delta(user, runbook, what):
    """The out-of-band swaps for `what` (a changes.Since): the page's revision, the changed rows
    (and every row of a phase whose state changed) with their headings and the status block
    (pages.render_deltas), the contacts when they changed."""
    state_ids = set(what.state_ids)
    if what.phase_ids:
        state_ids |= set(ItemState.objects.filter(
            runbook=runbook, item__group__phase_id__in=what.phase_ids).values_list("pk", flat=True))
    parts = [render_to_string("checklist/_sync.html", {"runbook": runbook, "oob": True})]
    if state_ids:
        parts.append(pages.render_deltas(user, runbook, sorted(state_ids), what.run_ids))
    else:
        parts.append(pages.render_status(user, runbook))
    if RunbookChange.CONTACTS in what.kinds:
        parts.append(oob(render_to_string("checklist/_contacts.html",
                                          pages.contacts_context(user, runbook))))
    return "\n".join(p.strip() for p in parts if p.strip())


def go_live_event(user, runbook_id, revision):
    """The go-live page's body for this viewer (their own Approve button) when what it shows
    changed (approvals, the request, sign-offs, counts); a job's progress changes none of it."""
    runbook = Runbook.objects.select_related("template").get(pk=runbook_id)
    what = changes.since(runbook_id, revision, current=runbook.revision)
    if what is not None and not (what.kinds & {RunbookChange.GO_LIVE, RunbookChange.PHASES,
                                               RunbookChange.ITEMS}):
        return runbook.revision, ""
    return runbook.revision, oob(render_to_string("checklist/_go_live_body.html",
                                                  pages.go_live_context(user, runbook)))


def _touches(what, state_ids=(), phase_ids=(), run_ids=()):
    """Whether the changes `what` (None: unknown) can show on a page about these."""
    return (what is None or bool(set(what.state_ids) & set(state_ids))
            or bool(set(what.phase_ids) & set(phase_ids))
            or bool(set(what.run_ids) & set(run_ids)))


def item_event(user, runbook_id, revision, state_id):
    """The item page's body, when a change touched the item or its phase; else nothing."""
    from .models import ItemState
    from .views import item_detail_context

    state = (ItemState.objects.select_related("runbook__template", "item__group__phase",
                                              "checked_by").get(pk=state_id, runbook_id=runbook_id))
    what = changes.since(runbook_id, revision, current=state.runbook.revision)
    if not _touches(what, [state.pk], [state.item.group.phase_id]):
        return state.runbook.revision, ""
    return state.runbook.revision, oob(render_to_string(
        "checklist/_item_body.html", item_detail_context(user, state)))


def run_event(user, runbook_id, revision, run_id):
    """The run page's body, when the run moved; else nothing."""
    from .models import TaskRun
    from .views import run_detail_context

    run = TaskRun.objects.select_related("runbook__template", "started_by").get(
        pk=run_id, runbook_id=runbook_id)
    what = changes.since(runbook_id, revision, current=run.runbook.revision)
    if not _touches(what, run_ids=[run.pk]):
        return run.runbook.revision, ""
    return run.runbook.revision, oob(render_to_string(
        "checklist/_run_body.html", run_detail_context(user, run)))
