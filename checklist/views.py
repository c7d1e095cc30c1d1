"""Pages and htmx endpoints of the checklist.

Each view loads what the user may see, calls one action (which asks the rules and writes the audit
event), and renders a partial for htmx or the page otherwise. Refusals come back as a short message
with the status the rule chose (403 for a role, 409 for the state of the runbook).
"""
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import actions, rules
from .models import ChecklistTemplate, ContactField, ItemNote, ItemState, Phase, Runbook


def _refused(request, refused):
    if request.htmx:
        response = render(request, "checklist/_refused.html", {"message": str(refused)},
                          status=refused.status)
        # The message goes to the page's message area, whatever the request was aimed at.
        response["HX-Retarget"] = "#messages"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "checklist/refused.html", {"message": str(refused)},
                  status=refused.status)


def reader_required(view):
    """Log in, hold a role; refusals are audited and shown as a plain 403 page."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        decision = rules.can_read(request.user)
        if not decision:
            try:
                actions.deny(request.user, "read", decision)
            except actions.Refused as refused:
                return _refused(request, refused)
        return view(request, *args, **kwargs)

    return wrapper


def _runbook(runbook_id):
    return get_object_or_404(Runbook.objects.select_related("template"), pk=runbook_id)


def runbook_context(request, runbook):
    """Everything the runbook page and its partials show, in a fixed number of queries."""
    facts = rules.RunbookFacts.load(runbook)
    user = request.user
    may_work = bool(rules.can_work(user))
    may_lead = bool(rules.can_lead(user))
    notes = {}
    for note in (
        ItemNote.objects.filter(state__runbook=runbook).select_related("author").order_by("pk")
    ):
        notes.setdefault(note.state_id, []).append(note)
    phases = []
    for phase in facts.phases:
        status = facts.status(phase)
        groups = {}
        for st in facts.states:
            if st.item.group.phase_id != phase.pk:
                continue
            st.note_list = notes.get(st.pk, [])
            st.may_change = may_work and status.is_open
            st.may_mark_na = st.may_change and (st.item.if_applicable or may_lead)
            groups.setdefault(st.item.group_id, (st.item.group, []))[1].append(st)
        group_list = []
        for group, states in groups.values():
            group.state_list = states
            group.complete = all(s.complete for s in states)
            group.done = sum(1 for s in states if s.complete)
            group_list.append(group)
        status.group_list = group_list
        status.may_sign_off = bool(rules.can_sign_off(user, phase, facts))
        phases.append(status)
    contacts = list(runbook.contact_values.select_related("field", "updated_by").order_by("field__order"))
    return {
        "runbook": runbook,
        "facts": facts,
        "phases": phases,
        "block": rules.status_block(facts),
        "contacts": contacts,
        "may_work": may_work,
        "may_lead": may_lead,
        "may_edit_contacts": bool(rules.can_edit_contacts(user)),
        "may_request_go_live": bool(rules.can_request_go_live(user, facts)),
        "may_approve_go_live": bool(rules.can_approve_go_live(user, facts)),
    }


@require_GET
@reader_required
def runbook_list(request):
    runbooks = []
    for runbook in Runbook.objects.select_related("template").order_by("-created_at"):
        facts = rules.RunbookFacts.load(runbook)
        runbook.block = rules.status_block(facts)
        runbook.current = rules.current_phase(facts)
        runbooks.append(runbook)
    templates = ChecklistTemplate.objects.order_by("name", "-version")
    return render(request, "checklist/runbook_list.html", {
        "runbooks": runbooks,
        "templates": templates,
        "may_start": bool(rules.can_start_runbook(request.user)),
    })


@require_POST
@reader_required
def runbook_start(request):
    template = get_object_or_404(ChecklistTemplate, pk=request.POST.get("template"))
    try:
        runbook = actions.start_runbook(request.user, template, request.POST.get("name", ""))
    except actions.Refused as refused:
        return _refused(request, refused)
    url = reverse("runbook", args=[runbook.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@require_GET
@reader_required
def runbook_page(request, runbook_id):
    runbook = _runbook(runbook_id)
    return render(request, "checklist/runbook.html", runbook_context(request, runbook))


def _item_action(request, runbook_id, state_id, act):
    state = get_object_or_404(
        ItemState.objects.select_related("runbook", "item__group__phase"),
        pk=state_id, runbook_id=runbook_id,
    )
    try:
        act(state)
    except actions.Refused as refused:
        if request.htmx and refused.status == 409:
            # Show the latest state of the runbook with the message, not a stale row.
            context = runbook_context(request, state.runbook)
            context["message"] = str(refused)
            return render(request, "checklist/_runbook_body.html", context, status=409)
        return _refused(request, refused)
    return _after_write(request, state.runbook)


def _after_write(request, runbook):
    runbook.refresh_from_db()
    if request.htmx:
        return render(request, "checklist/_runbook_body.html", runbook_context(request, runbook))
    return redirect("runbook", runbook.pk)


@require_POST
@reader_required
def item_tick(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.tick(
        request.user, st, request.POST.get("note", ""), request.POST.get("version") or None))


@require_POST
@reader_required
def item_untick(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.untick(
        request.user, st, request.POST.get("note", ""), request.POST.get("version") or None))


@require_POST
@reader_required
def item_note(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id,
                        lambda st: actions.add_note(request.user, st, request.POST.get("note", "")))


@require_POST
@reader_required
def item_not_applicable(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.mark_not_applicable(
        request.user, st, request.POST.get("reason", "")))


@require_POST
@reader_required
def item_applicable(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.clear_not_applicable(
        request.user, st, request.POST.get("note", "")))


@require_POST
@reader_required
def phase_sign_off(request, runbook_id, phase_id):
    runbook = _runbook(runbook_id)
    phase = get_object_or_404(Phase, pk=phase_id, template_id=runbook.template_id)
    try:
        actions.sign_off(request.user, runbook, phase, request.POST.get("comment", ""))
    except actions.Refused as refused:
        return _refused(request, refused)
    return _after_write(request, runbook)


@require_GET
@reader_required
def go_live_page(request, runbook_id):
    runbook = _runbook(runbook_id)
    return render(request, "checklist/go_live.html", runbook_context(request, runbook))


@require_POST
@reader_required
def go_live_request(request, runbook_id):
    runbook = _runbook(runbook_id)
    try:
        actions.request_go_live(request.user, runbook, request.POST.get("comment", ""))
    except actions.Refused as refused:
        return _refused(request, refused)
    return _go_live_after(request, runbook)


@require_POST
@reader_required
def go_live_approve(request, runbook_id):
    runbook = _runbook(runbook_id)
    try:
        actions.approve_go_live(request.user, runbook, request.POST.get("comment", ""))
    except actions.Refused as refused:
        return _refused(request, refused)
    return _go_live_after(request, runbook)


def _go_live_after(request, runbook):
    if request.htmx:
        return render(request, "checklist/_go_live_body.html", runbook_context(request, runbook))
    return redirect("go-live", runbook.pk)


@require_POST
@reader_required
def contact_edit(request, runbook_id, field_id):
    runbook = _runbook(runbook_id)
    field = get_object_or_404(ContactField, pk=field_id, template_id=runbook.template_id)
    try:
        actions.set_contact(request.user, runbook, field, request.POST.get("value", ""))
    except actions.Refused as refused:
        return _refused(request, refused)
    if request.htmx:
        return render(request, "checklist/_contacts.html", runbook_context(request, runbook))
    return redirect("runbook", runbook.pk)


@require_GET
@reader_required
def runbook_poll(request, runbook_id):
    """Other people's changes: 204 while the revision the page shows is current, else the body."""
    runbook = _runbook(runbook_id)
    if str(runbook.revision) == request.GET.get("rev"):
        return HttpResponse(status=204)
    return render(request, "checklist/_runbook_body.html", runbook_context(request, runbook))
