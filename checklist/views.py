"""Pages and htmx endpoints of the checklist.

Each view loads what the user may see, calls one action (which asks the rules and writes the audit
event), and renders a partial for htmx or the page otherwise. Refusals come back as a short message
with the status the rule chose (403 for a role, 409 for the state of the runbook).
"""
import hashlib
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.cache import caches
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.contrib import messages
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import actions, job_actions, jobs, rules
from .evidence import evidence_file, file_sha256
from .forms import RunbookSettingsForm
from .models import (
    AuditEvent,
    ChecklistTemplate,
    ContactField,
    Evidence,
    ItemNote,
    ItemState,
    Phase,
    Runbook,
    RunbookTarget,
    SchemaApproval,
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
    # The schema-approval "kind" is no job: its item shows the approval panel instead.
    return [{"kind": _job_kind(k), "name": k, "run": runs.get(k), "may_run": may_run}
            for k in kinds if k != rules.SCHEMA_APPROVAL]


ROW_CACHE = "default"
ROW_CACHE_SECONDS = 3600

# reverse() for each of the ~800 item links was a third of the page's render time: reverse each
# item URL once with a placeholder id and substitute the real ids.
_PLACEHOLDER = "2147483647"
_ITEM_URLS = {"tick": "item-tick", "untick": "item-untick", "note": "item-note",
              "override": "item-override",
              "not_applicable": "item-not-applicable", "applicable": "item-applicable",
              "detail": "item-detail"}


def _item_urls(runbook):
    patterns = {key: reverse(name, args=[runbook.pk, _PLACEHOLDER])
                for key, name in _ITEM_URLS.items()}
    return lambda pk: {key: url.replace(_PLACEHOLDER, str(pk)) for key, url in patterns.items()}


def _latest_notes(runbook, state_id=None):
    """state_id -> its newest note, carrying `count` (all notes of that item), in one query.
    The runbook page shows the newest note and a count; the item page shows them all."""
    notes = ItemNote.objects.filter(state__runbook=runbook)
    if state_id is not None:
        notes = notes.filter(state_id=state_id)
    notes = notes.annotate(
        rank=Window(RowNumber(), partition_by=[F("state_id")],
                    order_by=[F("created_at").desc(), F("pk").desc()]),
        count=Window(Count("pk"), partition_by=[F("state_id")]),
    ).filter(rank=1).select_related("author")
    return {note.state_id: note for note in notes}


class _Page:
    """What every item row needs beyond its own state, gathered once per request; `only` (an
    ItemState) narrows the notes and runs to that one item, for a write's partial answer."""

    def __init__(self, request, runbook, only=None, bindings=None):
        user = request.user
        self.may_work = bool(rules.can_work(user))
        self.may_lead = bool(rules.can_lead(user))
        self.bindings = bindings if bindings is not None else jobs.runbook_bindings(runbook)
        self.notes = _latest_notes(runbook, only.pk if only is not None else None)
        if only is None:
            self.runs = jobs.latest_runs(runbook)
        else:
            kinds = self.bindings.get(only.item_id, ())
            self.runs = _latest_runs_of(runbook, kinds) if kinds else {}
        self.urls = _item_urls(runbook)
        self.runbook, self.user = runbook, user
        # Asked once per page whether or not the template has the item, so every runbook page
        # costs the same number of queries.
        self._schema = None if only is not None else schema_facts(runbook)

    def decorate(self, st, status):
        st.last_note = self.notes.get(st.pk)
        st.note_count = st.last_note.count if st.last_note else 0
        st.may_change = self.may_work and status.is_open
        st.may_mark_na = st.may_change and (st.item.if_applicable or self.may_lead)
        kinds = self.bindings.get(st.item_id, ())
        st.jobs = _job_panels(kinds, self.runs, st.may_change)
        st.source = rules.tick_source(st) if st.checked else ""
        # A job-bound item has no Tick button: its job earns it, or a lead overrides it.
        st.job_bound = bool(kinds)
        st.may_override = (st.may_change and self.may_lead and bool(kinds)
                           and rules.SCHEMA_APPROVAL not in kinds)
        st.urls = self.urls(st.pk)
        st.schema = None
        if rules.SCHEMA_APPROVAL in kinds:
            if self._schema is None:
                self._schema = schema_facts(self.runbook)
            st.schema = {**self._schema, "may_approve": self._schema["approval"] is None
                         and self._schema["evidence"] is not None and st.may_change
                         and bool(rules.can_approve_schema(self.user))}
        return st


def schema_facts(runbook):
    """The newest unified_schema.sql, the approval that stands for it, and the newest approval a
    newer file voided, as the rules see them (one query without a file, four with one)."""
    evidence = rules.latest_schema_evidence(runbook)
    if evidence is None:
        return {"evidence": None, "approval": None, "voided": None}
    approval = rules.schema_approval(runbook)
    voided = None
    if approval is None:
        voided = (SchemaApproval.objects.filter(runbook=runbook).exclude(sha256=evidence.sha256)
                  .select_related("lead").order_by("-created_at", "-pk").first())
    return {"evidence": evidence, "approval": approval, "voided": voided}


def _latest_runs_of(runbook, kinds):
    out = {}
    for run in runbook.runs.filter(kind__in=kinds).select_related("started_by").order_by(
            "-created_at", "-pk"):
        out.setdefault(run.kind, run)
    return out


def _row_key(st):
    """A cache key over every value an item row shows, so a cached row is never stale: a change
    to any of them is a different key."""
    note = st.last_note
    shown = (
        st.pk, st.item.text, st.checked, st.checked_by.get_username() if st.checked_by else "",
        st.checked_at, st.not_applicable, st.na_reason, st.earned_by, st.overridden,
        st.override_reason, st.version, st.may_change, st.may_mark_na, st.may_override,
        st.job_bound, st.note_count,
        (note.pk, note.text, note.action, note.created_at,
         note.author.get_username() if note.author else "") if note else None,
        [(job["name"], job["kind"].title, job["kind"].params, job["may_run"], _run_shown(job["run"]))
         for job in st.jobs],
        _schema_shown(st.schema),
        timezone.get_current_timezone_name(),
    )
    return "item-row:" + hashlib.sha256(repr(shown).encode()).hexdigest()


def _schema_shown(panel):
    if panel is None:
        return None
    ev, approval, voided = panel["evidence"], panel["approval"], panel["voided"]
    return (ev and (ev.pk, ev.sha256, ev.path), approval and approval.pk, voided and voided.pk,
            panel["may_approve"])


def _run_shown(run):
    if run is None:
        return None
    # An ended run no longer changes, so its log's length stands for its log.
    return (run.pk, run.state, run.percent, run.step, run.rows, run.eta_seconds, run.error,
            len(run.log), run.created_at, run.started_by.get_username() if run.started_by else "")


def _prerender_rows(runbook, states):
    """Set `st.html` on each job-less row, from the cache or rendered once and cached.

    Rendering 136 rows was most of the page's cost, and most rows do not change between two
    loads of the page. A row with an active run is always rendered: it polls its run and carries
    the session's CSRF token in its Cancel form."""
    cache = caches[ROW_CACHE]
    keyed = {_row_key(st): st for st in states
             if not any(job["run"] is not None and job["run"].active for job in st.jobs)}
    found = cache.get_many(list(keyed))
    missing = {}
    for key, st in keyed.items():
        html = found.get(key)
        if html is None:
            html = missing[key] = render_to_string(
                "checklist/_item.html", {"st": st, "runbook": runbook, "in_runbook": True})
        st.html = mark_safe(html)
    if missing:
        cache.set_many(missing, ROW_CACHE_SECONDS)


def _group(group, states):
    group.state_list = states
    group.done = sum(1 for s in states if s.complete)
    group.complete = group.done == len(states)
    return group


def _runbook_flags(user, facts):
    return {
        "may_work": bool(rules.can_work(user)),
        "may_lead": bool(rules.can_lead(user)),
        "may_edit_contacts": bool(rules.can_edit_contacts(user)),
        "may_configure": bool(rules.can_configure(user)),
        "may_request_go_live": bool(rules.can_request_go_live(user, facts)),
        "may_approve_go_live": bool(rules.can_approve_go_live(user, facts)),
        "may_view_history": bool(rules.can_view_history(user)),
    }


def runbook_context(request, runbook):
    """Everything the runbook page and its partials show, in a fixed number of queries."""
    facts = rules.RunbookFacts.load(runbook)
    page = _Page(request, runbook, bindings=facts.bound)
    by_group = {}
    for st in facts.states:
        page.decorate(st, facts.status(st.item.group.phase_id))
        by_group.setdefault(st.item.group.phase_id, {}).setdefault(
            st.item.group_id, (st.item.group, []))[1].append(st)
    _prerender_rows(runbook, facts.states)
    phases = []
    for phase in facts.phases:
        status = facts.status(phase)
        status.group_list = [_group(g, states)
                             for g, states in by_group.get(phase.pk, {}).values()]
        status.may_sign_off = bool(rules.can_sign_off(request.user, phase, facts))
        phases.append(status)
    contacts = list(runbook.contact_values.select_related("field", "updated_by").order_by("field__order"))
    return {
        "runbook": runbook,
        "facts": facts,
        "phases": phases,
        # Not "block": inside {% block %} that name is the template block itself.
        "summary": rules.status_block(facts),
        "contacts": contacts,
        **_runbook_flags(request.user, facts),
        "in_runbook": True,
    }


def item_write_context(request, runbook, state_id):
    """What an item write changes on the page: the item, its group heading, its phase heading
    and the status block, from one load of the facts."""
    # Counts are enough for the phase and status block; only this item's group is read whole.
    facts = rules.RunbookFacts.load(runbook, states=False)
    group_id = ItemState.objects.filter(pk=state_id).values("item__group_id")[:1]
    group_states = list(
        ItemState.objects.filter(runbook=runbook, item__group_id=group_id)
        .select_related("item__group__phase", "checked_by").order_by("item__order"))
    st = next(s for s in group_states if s.pk == state_id)
    page = _Page(request, runbook, only=st, bindings=facts.bound)
    status = facts.status(st.item.group.phase_id)
    page.decorate(st, status)
    status.may_sign_off = bool(rules.can_sign_off(request.user, st.item.group.phase, facts))
    group = _group(st.item.group, group_states)
    return {
        "runbook": runbook,
        "facts": facts,
        "st": st,
        "group": group,
        "ps": status,
        "summary": rules.status_block(facts),
        "may_work": page.may_work,
        "in_runbook": True,
        "oob": True,
    }


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
    return render(request, "checklist/runbook.html", runbook_context(request, runbook))


def _item_action(request, runbook_id, state_id, act, may_withdraw=False):
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
        if request.htmx and refused.status == 409:
            # Show the latest state of the runbook with the message, not a stale row.
            runbook.refresh_from_db()
            context = runbook_context(request, runbook)
            context["message"] = str(refused)
            return _whole_body(request, context, status=409, message="conflict")
        return _refused(request, refused)
    if not request.htmx:
        return redirect("runbook", runbook.pk)
    # The revision first, then the facts: the facts are at least as new as the revision shown.
    runbook.refresh_from_db(fields=["revision"])
    context = item_write_context(request, runbook, state.pk)
    if standing is not None and {s.pk for s in context["facts"].sign_offs.values()} != standing:
        return _whole_body(request, runbook_context(request, runbook))
    # The page may take this revision as its own only if no one else wrote since the page's
    # revision; otherwise its next poll brings the whole body with everyone's changes.
    context["sync"] = request.POST.get("rev", "") == str(runbook.revision - 1)
    return render(request, "checklist/_item_write.html", context)


def _after_write(request, runbook):
    runbook.refresh_from_db()
    if request.htmx:
        return _whole_body(request, runbook_context(request, runbook))
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


@require_POST
@reader_required
def item_untick(request, runbook_id, state_id):
    return _item_action(request, runbook_id, state_id, lambda st: actions.untick(
        request.user, st, request.POST.get("note", ""), request.POST.get("version") or None),
        may_withdraw=True)


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
        request.user, st, request.POST.get("note", "")), may_withdraw=True)


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
