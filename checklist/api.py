"""The JSON read API for tools and auditors.

Session or bearer-token auth (`Authorization: Bearer <token>`, made with
`manage.py create_api_token USER`); the same permission rules as the pages.
"""
import hashlib
import secrets

import json

from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import params as job_params, rules
from .actions import Refused, deny
from .models import ApiToken, Item, Runbook, TaskRun


def new_token(user, name):
    """Create a token for `user` and return its plain text (shown once, stored only hashed)."""
    key = secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, name=name, key_sha256=hashlib.sha256(key.encode()).hexdigest())
    return key


def authenticate_token(request):
    """The user behind a bearer token, or None. Session auth is handled by Django."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    digest = hashlib.sha256(header.removeprefix("Bearer ").strip().encode()).hexdigest()
    token = ApiToken.objects.select_related("user").filter(key_sha256=digest).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def api_user(request):
    user = authenticate_token(request)
    return user if user is not None else request.user


def error(status, message):
    return JsonResponse({"error": message}, status=status)


def _user(u):
    return u.get_username() if u is not None else None


def _when(dt):
    return dt.isoformat() if dt else None


def runbook_document(runbook, facts=None, item_extra=None):
    """The runbook as the API and the exports show it."""
    facts = facts or rules.RunbookFacts.load(runbook)
    block = rules.status_block(facts)
    by_group = {}
    for st in facts.states:
        entry = {
            "id": st.item_id,
            "state_id": st.pk,
            "key": st.item.key,
            "text": st.item.text,
            "checked": st.checked,
            "checked_by": _user(st.checked_by) if st.checked else None,
            "checked_at": _when(st.checked_at) if st.checked else None,
            "not_applicable": st.not_applicable,
            "na_reason": st.na_reason,
            # How the tick came about: earned (the run id, or the schema approval), overridden by
            # a lead with a reason, or by hand. Never both earned and overridden.
            "tick_source": rules.tick_source(st) if st.checked else None,
            "earned_by": st.earned_run_id if st.checked else None,
            "earned_via": st.earned_by if st.checked else "",
            "override": ({"by": _user(st.checked_by), "reason": st.override_reason}
                         if st.checked and st.overridden else None),
            "version": st.version,
        }
        if item_extra:
            entry.update(item_extra(st))
        by_group.setdefault(st.item.group_id, (st.item.group, []))[1].append(entry)
    phases = []
    for p in facts.phases:
        status = facts.status(p)
        phases.append(
            {
                "id": p.pk,
                "title": p.title,
                "kind": p.kind,
                "state": status.state,
                "lock_reason": status.reason,
                "done": status.done,
                "total": status.total,
                "signed_off_by": _user(status.sign_off.lead) if status.sign_off else None,
                "signed_off_at": _when(status.sign_off.created_at) if status.sign_off else None,
                "groups": [
                    {"id": g.pk, "section": g.section, "title": g.title, "items": items}
                    for g, items in (v for v in by_group.values() if v[0].phase_id == p.pk)
                ],
            }
        )
    return {
        "id": runbook.pk,
        "name": runbook.name,
        "revision": runbook.revision,
        "template": {"id": runbook.template_id, "name": runbook.template.name,
                     "version": runbook.template.version, "sha256": runbook.template.sha256},
        "phases": phases,
        "status": {
            # As the page counts: the work is the items of the gated phases; rollback triggers
            # (a ticked one fired) and success criteria are counted apart, never as work.
            "done": block.work_done,
            "total": block.work_total,
            "rollback_triggers": {"fired": block.triggers_fired, "total": block.triggers_total},
            "other_phases": [{"id": s.phase.pk, "title": s.phase.title, "kind": s.phase.kind,
                              "done": s.done, "total": s.total} for s in block.others],
            "all_items": {"done": block.done, "total": block.total},
            "ticks": {"earned": block.earned, "overridden": block.overridden,
                      "by_hand": block.by_hand},
            "all_checks_complete": block.all_checks_complete,
            "ready_for_production": block.ready_for_production,
            "team_approval": block.team_approval,
            "go_live": block.go_live_state,
            "go_live_authorized": block.go_live_authorized,
            "approvals_required": block.approvals_required,
            "missing": block.missing,
        },
        "go_live_request": (
            {"requested_by": _user(facts.go_live.requested_by),
             "requested_at": _when(facts.go_live.requested_at)}
            if facts.go_live else None
        ),
        "approvals": [
            {"lead": _user(a.lead), "at": _when(a.created_at), "comment": a.comment}
            for a in facts.approvals
        ],
    }


def run_document(run):
    return {
        "id": run.pk,
        "kind": run.kind,
        "state": run.state,
        "stale": run.stale,
        "started_by": _user(run.started_by),
        "params": job_params.shown(run.params),
        "progress": {"step": run.step, "percent": run.percent, "rows": run.rows,
                     "eta_seconds": run.eta_seconds},
        "created_at": _when(run.created_at),
        "started_at": _when(run.started_at),
        "finished_at": _when(run.finished_at),
        "worker": run.worker,
        "error": run.error,
        "evidence": [
            {"name": e.name, "kind": e.kind, "sha256": e.sha256, "size": e.size,
             "figures": e.figures}
            for e in run.evidence.all()
        ],
    }


def runs_by_item(runbook):
    """item_id -> run documents, newest first, in a fixed number of queries."""
    runs = (TaskRun.objects.filter(runbook=runbook).select_related("started_by")
            .prefetch_related("evidence", "items").order_by("-created_at", "-pk"))
    out = {}
    for run in runs:
        doc = run_document(run)
        for item in run.items.all():
            out.setdefault(item.pk, []).append(doc)
    return out


def _reader(request, runbook):
    user = api_user(request)
    if not user.is_authenticated:
        return None, error(401, "Log in or send 'Authorization: Bearer <token>'.")
    try:
        decision = rules.can_read(user)
        if not decision:
            deny(user, "api-read", decision, obj=runbook, runbook=runbook)
    except Refused as refused:
        return None, error(refused.status, str(refused))
    return user, None


@csrf_exempt  # bearer-token clients have no CSRF cookie; session callers are checked below
@require_http_methods(["GET", "POST"])
def runbook_detail(request, runbook_id):
    runbook = get_object_or_404(Runbook.objects.select_related("template"), pk=runbook_id)
    if request.method == "POST":
        return error(405, "POST to /api/runbooks/<id>/jobs/ to start a job.")
    user, failure = _reader(request, runbook)
    if failure:
        return failure
    from .jobs import runbook_bindings

    # A read writes nothing: lost runs are marked by the beat task, a silent one shows "stale".
    runs = runs_by_item(runbook)
    kinds = runbook_bindings(runbook)
    return JsonResponse(runbook_document(
        runbook, item_extra=lambda st: {"jobs": kinds.get(st.item_id, []),
                                        "runs": runs.get(st.item_id, [])}
        if st.item_id in kinds or st.item_id in runs else {}))


@csrf_exempt
@require_http_methods(["POST"])
def runbook_jobs(request, runbook_id):
    """Start a job: {"kind": "backup", "params": {...}}; the same checks as the Run button."""
    runbook = get_object_or_404(Runbook.objects.select_related("template"), pk=runbook_id)
    shape = "The body must be a JSON object: {\"kind\": ..., \"params\": {...}}."
    if not _json_request(request):
        return error(400, shape)
    token_user = authenticate_token(request)
    if token_user is None:
        # A browser session must prove it is the page, not a forged cross-site request.
        reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if reason is not None:
            return error(403, "CSRF check failed: send the X-CSRFToken header.")
    user, failure = _reader(request, runbook)
    if failure:
        return failure
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return error(400, shape)
    if not isinstance(body, dict):
        return error(400, shape)
    if not isinstance(body.get("kind"), str):
        return error(400, "'kind' must be the name of a job kind.")
    from .job_actions import start_job

    try:
        run = start_job(user, runbook, body["kind"], body.get("params"))
    except Refused as refused:
        return error(refused.status, str(refused))
    return JsonResponse(run_document(run), status=202)


def _json_request(request):
    """Whether the body is JSON (or absent). A form body is refused before anything reads it:
    once the CSRF check has parsed a form, its raw bytes can no longer be read."""
    return request.content_type in ("application/json", "")


@csrf_exempt
@require_http_methods(["POST"])
def item_key(request, item_id):
    """Give an item of a checklist version its stable key: {"key": "backup-verified"} ('' for
    none). Leads only, until a runbook starts on the version; audited (actions.set_item_key)."""
    from .actions import set_item_key

    item = get_object_or_404(Item.objects.select_related("group__phase__template"), pk=item_id)
    if not _json_request(request):
        return error(400, 'The body must be a JSON object: {"key": "a-slug"}.')
    token_user = authenticate_token(request)
    if token_user is None:
        reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if reason is not None:
            return error(403, "CSRF check failed: send the X-CSRFToken header.")
    user = api_user(request)
    if not user.is_authenticated:
        return error(401, "Log in or send an API token.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("key"), str):
        return error(400, 'The body must be a JSON object: {"key": "a-slug"}.')
    try:
        item = set_item_key(user, item, body["key"].strip())
    except Refused as refused:
        return error(refused.status, str(refused))
    return JsonResponse({"id": item.pk, "key": item.key, "text": item.text})
