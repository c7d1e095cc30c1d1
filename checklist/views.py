"""Pages and htmx endpoints of the checklist.

Each view loads what the user may see, calls one action (which asks the rules and writes the audit
event), and renders a partial for htmx or the page otherwise. Refusals come back as a short message
with the status the rule chose (403 for a role, 409 for the state of the runbook).
"""
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import actions, jobs, rules
from .models import (
    AuditEvent,
    ChecklistTemplate,
    ContactField,
    ItemNote,
    ItemState,
    Phase,
    Runbook,
    TaskRun,
)

# A response carrying this header is a message meant for the page (a refusal, a conflict):
# app.js lets htmx swap it although its status is 4xx.
MESSAGE_HEADER = "X-Mingus-Message"


def lockout(request, original_response=None, credentials=None):
    """django-axes lockout response (settings.AXES_LOCKOUT_CALLABLE): the login page, with a
    plain message, and axes' 429 status."""
    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    return render(request, "registration/login.html",
                  {"locked_out": True, "cool_off_minutes": minutes, "next": ""}, status=429)


def _refused(request, refused):
    if request.htmx:
        response = render(request, "checklist/_refused.html", {"message": str(refused)},
                          status=refused.status)
        # The message goes to the page's message area, whatever the request was aimed at.
        response["HX-Retarget"] = "#messages"
        response["HX-Reswap"] = "innerHTML"
        response[MESSAGE_HEADER] = "refused"
        return response
    return render(request, "checklist/refused.html", {"message": str(refused)},
                  status=refused.status)


def reader_required(view):
    """Log in, hold a role; refusals are audited and shown as a plain 403 page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                # A poll or click after the session ended: send the whole page to the login form
                # instead of swapping the login page into a fragment.
                page = request.htmx.current_url_abs_path or reverse("runbook-list")
                response = HttpResponse(status=204)
                response["HX-Redirect"] = f"{reverse('login')}?next={page}"
                return response
            return redirect_to_login(request.get_full_path())
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


def _job_kind(name):
    """The kind as shown on a button, without a query (start_job checks it for real)."""
    if name in jobs.REGISTRY:
        return jobs.REGISTRY[name]
    prefix = getattr(jobs, "COMMAND_PREFIX", "command:")
    title = f"Run {name.removeprefix(prefix)}" if name.startswith(prefix) else name
    return jobs.JobKind(name, title, "")


def _job_panels(kinds, runs, may_run):
    return [{"kind": _job_kind(k), "name": k, "run": runs.get(k), "may_run": may_run}
            for k in kinds]


def runbook_context(request, runbook):
    """Everything the runbook page and its partials show, in a fixed number of queries."""
    facts = rules.RunbookFacts.load(runbook)
    user = request.user
    may_work = bool(rules.can_work(user))
    may_lead = bool(rules.can_lead(user))
    bindings = jobs.bindings_for(runbook.template)
    runs = jobs.latest_runs(runbook)
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
            st.jobs = _job_panels(bindings.get(st.item_id, ()), runs, st.may_change)
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
        # Not "block": inside {% block %} that name is the template block itself.
        "summary": rules.status_block(facts),
        "contacts": contacts,
        "may_work": may_work,
        "may_lead": may_lead,
        "may_edit_contacts": bool(rules.can_edit_contacts(user)),
        "may_request_go_live": bool(rules.can_request_go_live(user, facts)),
        "may_approve_go_live": bool(rules.can_approve_go_live(user, facts)),
        "may_view_history": bool(rules.can_view_history(user)),
        "in_runbook": True,
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
            state.runbook.refresh_from_db()
            context = runbook_context(request, state.runbook)
            context["message"] = str(refused)
            response = render(request, "checklist/_runbook_body.html", context, status=409)
            response[MESSAGE_HEADER] = "conflict"
            return response
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


# --- Jobs ---------------------------------------------------------------------------------------


@require_POST
@reader_required
def job_run(request, runbook_id, kind):
    runbook = _runbook(runbook_id)
    params = {}
    command = request.POST.get("command", "").strip()
    if command:
        params["command"] = command
    try:
        jobs.start_job(request.user, runbook, kind, params)
    except actions.Refused as refused:
        return _refused(request, refused)
    return _after_write(request, runbook)


def _run_for(runbook_id, run_id):
    return get_object_or_404(
        TaskRun.objects.select_related("runbook__template", "started_by"),
        pk=run_id, runbook_id=runbook_id,
    )


@require_POST
@reader_required
def run_cancel(request, runbook_id, run_id):
    run = _run_for(runbook_id, run_id)
    try:
        jobs.cancel_run(request.user, run)
    except actions.Refused as refused:
        return _refused(request, refused)
    return _after_write(request, run.runbook)


@require_GET
@reader_required
def run_detail(request, runbook_id, run_id):
    """One run: its progress, log and evidence. htmx polls the progress partial while it runs."""
    run = _run_for(runbook_id, run_id)
    context = {"run": run, "runbook": run.runbook,
               "may_work": bool(rules.can_work(request.user))}
    if request.htmx:
        context["in_runbook"] = not (request.htmx.target or "").startswith("run-detail-")
        # 286 tells htmx to stop polling: the run has ended, this is its last state.
        return render(request, "checklist/_run_progress.html", context,
                      status=200 if run.active else 286)
    context["evidence"] = list(run.evidence.all())
    context["items"] = list(run.items.select_related("group__phase"))
    return render(request, "checklist/run.html", context)


# --- Item detail and evidence -----------------------------------------------------------------


@require_GET
@reader_required
def item_detail(request, runbook_id, state_id):
    state = get_object_or_404(
        ItemState.objects.select_related("runbook__template", "item__group__phase", "checked_by"),
        pk=state_id, runbook_id=runbook_id,
    )
    runbook = state.runbook
    facts = rules.RunbookFacts.load(runbook)
    status = facts.status(state.item.group.phase_id)
    events = list(
        AuditEvent.objects.filter(runbook=runbook, item=state.item).select_related("actor")
        .order_by("seq")
    )
    runs = list(
        TaskRun.objects.filter(runbook=runbook, items=state.item)
        .select_related("started_by").prefetch_related("evidence").order_by("-created_at", "-pk")
    )
    return render(request, "checklist/item_detail.html", {
        "runbook": runbook,
        "st": state,
        "status": status,
        "notes": list(state.notes.select_related("author")),
        "events": events,
        "runs": runs,
        "may_view_history": bool(rules.can_view_history(request.user)),
    })


def evidence_file(evidence):
    """The evidence's file on disk, refusing any path that leaves MEDIA_ROOT."""
    from pathlib import Path

    from django.conf import settings

    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / evidence.path).resolve()
    if not evidence.path or not path.is_relative_to(root):
        return None
    return path


def file_sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@require_GET
@reader_required
def evidence_download(request, runbook_id, evidence_id):
    """Serve an evidence file only while it still matches the sha256 recorded when it was made."""
    from django.http import FileResponse

    from .models import Evidence

    evidence = get_object_or_404(Evidence.objects.select_related("run__runbook"),
                                 pk=evidence_id, run__runbook_id=runbook_id)
    runbook = evidence.run.runbook
    path = evidence_file(evidence)
    problem = None
    if path is None or not path.is_file():
        problem = (f"The file of evidence '{evidence.name}' is missing from storage; it cannot be "
                   "served. The audit log records this attempt.")
    else:
        actual = file_sha256(path)
        if actual != evidence.sha256:
            problem = (f"The file of evidence '{evidence.name}' no longer matches the checksum "
                       f"recorded when it was made (recorded {evidence.sha256[:12]}…, now "
                       f"{actual[:12]}…). It was not served; tell an admin. The audit log "
                       "records this attempt.")
    if problem:
        try:
            actions.deny(request.user, "evidence-download",
                         rules.Decision(False, problem, rules.CONFLICT),
                         obj=evidence, runbook=runbook)
        except actions.Refused as refused:
            return _refused(request, refused)
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)
    response["X-Evidence-SHA256"] = evidence.sha256
    return response
