"""The audit history of a runbook: the page, its filters, and the chain's integrity."""
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import actions, audit, digests, rules
from .forms import HistoryFilterForm
from .models import AuditEvent, ItemState, Phase
from .views import _refused, _runbook, reader_required

PAGE_SIZE = 50
DIGESTS_LISTED = 10


def history_access(request, runbook, what):
    """None when the user may see the history; otherwise the refusal response (audited)."""
    decision = rules.can_view_history(request.user)
    if decision:
        return None
    try:
        actions.deny(request.user, what, decision, obj=runbook, runbook=runbook)
    except actions.Refused as refused:
        return _refused(request, refused)


def filtered_events(request, runbook):
    """(form, queryset) for the runbook's events filtered by the request's query string."""
    base = AuditEvent.objects.filter(runbook=runbook)
    phases = Phase.objects.filter(template_id=runbook.template_id).order_by("order")
    form = HistoryFilterForm(
        request.GET or None,
        phases=phases,
        actions=base.order_by("action").values_list("action", flat=True).distinct(),
        people=base.order_by("actor_label").values_list("actor_label", flat=True).distinct(),
    )
    events = form.filter(base).select_related("phase", "item").order_by("seq")
    return form, events


def chain_status():
    """The chain recomputed and checked against every signed digest (verify_audit also replays
    the state; that stays out of page loads)."""
    ok, checked, broken_at, reason = audit.verify_chain()
    count, problems = digests.verify()
    status = {"ok": ok and not problems, "checked": checked, "broken_at": broken_at,
              "reason": reason, "digests": count,
              "digest_problems": [f"{where}: {why}" for where, why in problems]}
    if ok and problems:
        status["reason"] = "the chain does not match its signed digests"
    return status


@require_GET
@reader_required
def history_page(request, runbook_id):
    runbook = _runbook(runbook_id)
    refusal = history_access(request, runbook, "history")
    if refusal:
        return refusal
    form, events = filtered_events(request, runbook)
    problem = form.problem()
    if problem:  # a bad filter shows no events rather than all of them
        events = events.none()
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    states = dict(ItemState.objects.filter(runbook=runbook).values_list("item_id", "pk"))
    for event in page:
        event.state_id = states.get(event.item_id)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "checklist/history.html", {
        "runbook": runbook,
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "chain": chain_status(),
        "digests": digests.listing(limit=DIGESTS_LISTED),
        "filter_problem": problem,
    }, status=400 if problem else 200)
