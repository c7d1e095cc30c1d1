"""Pages and htmx endpoints of the checklist.

Each view loads what the user may see, calls one action (which asks the rules and writes the audit
event), and renders a partial for htmx or the page otherwise. Refusals come back as a short message
with the status the rule chose (403 for a role, 409 for the state of the runbook).
"""
from functools import wraps
from urllib.parse import quote

from django.contrib.auth.views import redirect_to_login
from django.contrib import messages
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import actions, job_actions, pages, rules
from .evidence import evidence_file, file_sha256
from .forms import RunbookSettingsForm
from .models import (
    AuditEvent,
    ChecklistTemplate,
    ContactField,
    Evidence,
    ItemState,
    Phase,
    Runbook,
    RunbookTarget,
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


# Sent by static/js/live.js with a write while the page's stream is open.
LIVE_HEADER = "X-Mingus-Live"

# The refusal's text, percent-encoded (headers are ASCII): app.js shows it in the message area
# and next to what was clicked.
MESSAGE_TEXT_HEADER = "X-Mingus-Message-Text"


def _refused(request, refused, confirm=None):
    """The refusal as a message; `confirm` ({"url", "version", "label"}) adds the form that
    repeats the write confirmed, with a reason, when the refusal lists what it would withdraw."""
    context = {"message": str(refused), "withdraws": refused.decision.withdraws,
               "confirm": confirm if refused.decision.withdraws else None}
    if request.htmx:
        response = render(request, "checklist/_refused.html", context, status=refused.status)
        # Without app.js the message goes to the page's message area, whatever the request was
        # aimed at; app.js also puts it next to what was clicked.
        response["HX-Retarget"] = "#messages"
        response["HX-Reswap"] = "afterbegin"
        response[MESSAGE_HEADER] = "refused"
        response[MESSAGE_TEXT_HEADER] = quote(str(refused))
        return response
    return render(request, "checklist/refused.html", context, status=refused.status)


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


@require_GET
@reader_required
def runbook_list(request):
    runbooks = []
    all_runbooks = Runbook.objects.select_related("template").order_by("-created_at")
    for facts in rules.RunbookFacts.load_many(all_runbooks):
        runbook = facts.runbook
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
    raw = request.POST.get("template", "")
    if not raw.isdigit() or len(raw) > 18:
        return HttpResponseBadRequest("'template' must be the id of a checklist template.",
                                      content_type="text/plain")
    template = get_object_or_404(ChecklistTemplate, pk=int(raw))
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
    return render(request, "checklist/runbook.html",
                  pages.runbook_page_context(request.user, runbook, get_token(request)))


def _item_action(request, runbook_id, state_id, act, may_withdraw=False, confirm_label=""):
    """Run an item action; answer htmx with the item row and out-of-band swaps of what it changed
    (its group and phase headings, the status block), or with the whole body when the write
    withdrew sign-offs (later phases lock again)."""
    state = get_object_or_404(
        ItemState.objects.select_related("runbook__template", "item__group__phase"),
        pk=state_id, runbook_id=runbook_id,
    )
    runbook = state.runbook
    standing = None
    if may_withdraw and request.htmx:
        standing = set(runbook.sign_offs.filter(withdrawn_at__isnull=True)
                       .values_list("pk", flat=True))
    try:
        act(state)
    except actions.Refused as refused:
        if refused.decision.withdraws:
            return _refused(request, refused, confirm={
                "url": request.path, "version": request.POST.get("version", ""), "state": state,
                "label": confirm_label})
        if request.htmx and refused.status == 409:
            # Show the latest state of the runbook with the message, not a stale row.
            runbook.refresh_from_db()
            context = pages.runbook_context(request.user, runbook)
            context["message"] = str(refused)
            response = _whole_body(request, context, status=409, message="conflict")
            response[MESSAGE_TEXT_HEADER] = quote(str(refused))
            return response
        return _refused(request, refused)
    if not request.htmx:
        return redirect("runbook", runbook.pk)
    if request.headers.get(LIVE_HEADER) == "open":
        # The page's stream brings the headings, counts and status block this write changed
        # (and the revision): answer with the row alone.
        row, facts = pages.item_row(request.user, runbook, state.pk)
        if standing is None or {s.pk for s in facts.sign_offs.values()} == standing:
            return HttpResponse(row)
    # The revision first, then the facts: the facts are at least as new as the revision shown.
    runbook.refresh_from_db(fields=["revision"])
    context = pages.item_write_context(request.user, runbook, state.pk)
    if standing is not None and {s.pk for s in context["facts"].sign_offs.values()} != standing:
        return _whole_body(request, pages.runbook_context(request.user, runbook))
    # The page may take this revision as its own only if no one else wrote since the page's
    # revision; otherwise its next poll brings the whole body with everyone's changes.
    context["sync"] = request.POST.get("rev", "") == str(runbook.revision - 1)
    return render(request, "checklist/_item_write.html", context)


def _after_write(request, runbook):
    runbook.refresh_from_db()
    if request.htmx:
        return _whole_body(request, pages.runbook_context(request.user, runbook))
    return redirect("runbook", runbook.pk)


def _whole_body(request, context, status=200, message=None):
    response = render(request, "checklist/_runbook_body.html", context, status=status)
    # Item buttons aim at their own row; this answer replaces the whole body instead.
    response["HX-Retarget"] = "#runbook-body"
    response["HX-Reswap"] = "outerHTML"
    if message:
        response[MESSAGE_HEADER] = message
    return response


@require_POST
@reader_required
def item_tick(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.tick(
        request.user, st, request.POST.get("note", ""), request.POST.get("version") or None))


def _confirmation(request):
    return {"confirm": request.POST.get("confirm") == "yes",
            "reason": request.POST.get("reason", "")[:500]}


@require_POST
@reader_required
def item_untick(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.untick(
        request.user, st, request.POST.get("note", ""), request.POST.get("version") or None,
        **_confirmation(request)), may_withdraw=True, confirm_label="Untick and withdraw")


@require_POST
@reader_required
def item_override(request, runbook_id, state_id):
    """A lead ticks a job-bound item without its job, with a required reason."""
    return _item_action(request, runbook_id, state_id, lambda st: actions.override(
        request.user, st, request.POST.get("reason", ""), request.POST.get("version") or None))


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
        request.user, st, request.POST.get("note", ""), **_confirmation(request)),
        may_withdraw=True, confirm_label="Make applicable and withdraw")


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
    return render(request, "checklist/go_live.html", pages.go_live_context(request.user, runbook))


@require_GET
@reader_required
def go_live_poll(request, runbook_id):
    """The go-live page's fallback without a stream: 204 while the revision the page shows is
    current, else its body."""
    runbook = _runbook(runbook_id)
    if str(runbook.revision) == request.GET.get("rev"):
        return HttpResponse(status=204)
    return render(request, "checklist/_go_live_body.html",
                  pages.go_live_context(request.user, runbook))


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
        return render(request, "checklist/_go_live_body.html",
                      pages.go_live_context(request.user, runbook))
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
        return render(request, "checklist/_contacts.html",
                      pages.contacts_context(request.user, runbook))
    return redirect("runbook", runbook.pk)


@require_GET
@reader_required
def phase_items(request, runbook_id, phase_id):
    """A collapsed phase's items, loaded when someone opens it."""
    runbook = _runbook(runbook_id)
    phase = get_object_or_404(Phase, pk=phase_id, template_id=runbook.template_id)
    return HttpResponse(pages.phase_items(request.user, runbook, phase.pk, get_token(request)))


@require_GET
@reader_required
def item_forms(request, runbook_id, state_id):
    """A row's rarer forms (not applicable, override), shown when asked for."""
    runbook = _runbook(runbook_id)
    context = pages.item_forms_context(request.user, runbook, state_id)
    if context is None:
        return HttpResponse("No such item in this runbook.", status=404, content_type="text/plain")
    return render(request, "checklist/_item_forms.html", context)


@require_GET
@reader_required
def runbook_poll(request, runbook_id):
    """Other people's changes: 204 while the revision the page shows is current, else the body."""
    runbook = _runbook(runbook_id)
    if str(runbook.revision) == request.GET.get("rev"):
        return HttpResponse(status=204)
    return HttpResponse(pages.runbook_body(request.user, runbook, get_token(request)))


@require_POST
@reader_required
def schema_approve(request, runbook_id, evidence_id):
    """A lead approves this unified_schema.sql (its sha256), which ticks the approval item."""
    runbook = _runbook(runbook_id)
    evidence = get_object_or_404(Evidence, pk=evidence_id, run__runbook_id=runbook.pk)
    try:
        actions.approve_schema(request.user, runbook, evidence,
                               request.POST.get("comment", "").strip())
    except actions.Refused as refused:
        return _refused(request, refused)
    return _after_write(request, runbook)


# --- Configuration -------------------------------------------------------------------------------


@reader_required
def runbook_settings(request, runbook_id):
    """Sources and target URL: leads change them, everyone who reads the runbook sees them (the
    target only in its redacted form)."""
    runbook = _runbook(runbook_id)
    decision = rules.can_configure(request.user)
    sources = list(runbook.sources.all())
    target = RunbookTarget.objects.filter(runbook=runbook).first()
    status = 200
    if request.method == "POST":
        if not decision:
            try:
                actions.deny(request.user, "configure", decision, obj=runbook, runbook=runbook)
            except actions.Refused as refused:
                return _refused(request, refused)
        form = RunbookSettingsForm(request.POST)
        if form.is_valid():
            try:
                # The target first: a refused URL leaves everything as it was.
                if form.cleaned_data["target_url"]:
                    actions.set_target(request.user, runbook, form.cleaned_data["target_url"])
                if form.cleaned_data["sources"] != {s.name: s.path for s in sources}:
                    actions.set_sources(request.user, runbook, form.cleaned_data["sources"])
            except actions.Refused as refused:
                if refused.status != 400:
                    return _refused(request, refused)
                form.add_error(None, str(refused))
            else:
                messages.success(request, "Settings saved.")
                return redirect("runbook-settings", runbook.pk)
        status = 400
        sources = list(runbook.sources.all())
        target = RunbookTarget.objects.filter(runbook=runbook).first()
    elif request.method == "GET":
        form = RunbookSettingsForm(initial={"sources": RunbookSettingsForm.as_text(sources)})
    else:
        return HttpResponseNotAllowed(["GET", "POST"])
    return render(request, "checklist/settings.html", {
        "runbook": runbook,
        "form": form,
        "sources": sources,
        "target": target,
        "may_configure": bool(decision),
    }, status=status)


# --- Jobs ---------------------------------------------------------------------------------------


@require_POST
@reader_required
def job_run(request, runbook_id, kind):
    runbook = _runbook(runbook_id)
    # Parameters are the form's `param.<name>` fields, checked like the API's (unknown -> 400);
    # the page's own fields (the revision htmx sends, the CSRF token) are not parameters.
    params = {k.removeprefix("param."): request.POST[k] for k in request.POST
              if k.startswith("param.")}
    try:
        job_actions.start_job(request.user, runbook, kind, params)
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
        job_actions.cancel_run(request.user, run)
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
    return render(request, "checklist/run.html", run_detail_context(request.user, run))


def run_detail_context(user, run):
    """What the run page shows (its live stream renders the body from it too)."""
    return {"run": run, "runbook": run.runbook, "may_work": bool(rules.can_work(user)),
            "evidence": list(run.evidence.all()),
            "items": list(run.items.select_related("group__phase"))}


# --- Item detail and evidence -----------------------------------------------------------------


@require_GET
@reader_required
def item_detail(request, runbook_id, state_id):
    state = get_object_or_404(
        ItemState.objects.select_related("runbook__template", "item__group__phase", "checked_by"),
        pk=state_id, runbook_id=runbook_id,
    )
    return render(request, "checklist/item_detail.html", item_detail_context(request.user, state))


def item_detail_context(user, state):
    """What the item page shows (its live stream renders the body from it too)."""
    runbook = state.runbook
    facts = rules.RunbookFacts.load(runbook, states=False)
    status = facts.status(state.item.group.phase_id)
    events = list(
        AuditEvent.objects.filter(runbook=runbook, item=state.item).select_related("actor")
        .order_by("seq")
    )
    runs = list(
        TaskRun.objects.filter(runbook=runbook, items=state.item)
        .select_related("started_by").prefetch_related("evidence").order_by("-created_at", "-pk")
    )
    return {
        "runbook": runbook,
        "st": state,
        "status": status,
        "notes": list(state.notes.select_related("author")),
        "events": events,
        "runs": runs,
        "may_view_history": bool(rules.can_view_history(user)),
    }


@require_GET
@reader_required
def evidence_download(request, runbook_id, evidence_id):
    """Serve an evidence file only while it still matches the sha256 recorded when it was made."""
    from django.http import FileResponse

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
