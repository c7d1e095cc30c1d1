"""The role matrix: every write endpoint against every role (member, lead, auditor, admin who is
not a lead, a user without a role, and anonymous), through the real HTTP endpoints.

Allowed roles get their change; every other role gets 403, no change, and a 'denied' audit event.
"""
from pathlib import Path

import pytest
from django.urls import reverse

from checklist import actions
from checklist.models import (AuditEvent, ChecklistTemplate, ContactValue, Evidence,
                               GoLiveApproval, GoLiveRequest, Item, ItemNote, ItemState, JobBinding,
                               Phase, Runbook, RunbookSource, RunbookTarget, SchemaApproval,
                               SignOff, TaskRun)
from deploychecks.models import RunbookCheckSettings

from tests.conftest import make_user

from .factories import complete_phase, gated, sign_off_through, hand_states, states_of

pytestmark = pytest.mark.django_db

WORKERS = {"member", "lead", "admin"}
LEADS = {"lead", "admin"}
LEAD_GROUP = {"lead"}  # approvals: an admin who is not a lead never approves


def _first_state(runbook):
    return hand_states(runbook, gated(runbook)[0])[0]


def setup_tick(rb, users):
    st = _first_state(rb)
    return reverse("item-tick", args=[rb.pk, st.pk]), {}, lambda: ItemState.objects.get(pk=st.pk).checked


def setup_untick(rb, users):
    st = _first_state(rb)
    actions.tick(users["member"], st)
    return (reverse("item-untick", args=[rb.pk, st.pk]), {},
            lambda: not ItemState.objects.get(pk=st.pk).checked)


def setup_note(rb, users):
    st = _first_state(rb)
    return (reverse("item-note", args=[rb.pk, st.pk]), {"note": "looked fine"},
            lambda: ItemNote.objects.filter(state=st, text="looked fine").exists())


def setup_not_applicable(rb, users):
    st = ItemState.objects.get(runbook=rb, item__text__icontains="(if applicable)")
    return (reverse("item-not-applicable", args=[rb.pk, st.pk]), {"reason": "no custom domain"},
            lambda: ItemState.objects.get(pk=st.pk).not_applicable)


def setup_applicable(rb, users):
    st = ItemState.objects.get(runbook=rb, item__text__icontains="(if applicable)")
    actions.mark_not_applicable(users["member"], st, "no custom domain")
    return (reverse("item-applicable", args=[rb.pk, st.pk]), {},
            lambda: not ItemState.objects.get(pk=st.pk).not_applicable)


def setup_sign_off(rb, users):
    first = gated(rb)[0]
    complete_phase(rb, first, users["member"])
    return (reverse("phase-sign-off", args=[rb.pk, first.pk]), {"comment": "ok"},
            lambda: SignOff.objects.filter(runbook=rb, phase=first).exists())


def setup_go_live_request(rb, users):
    sign_off_through(rb, 4, users["member"], users["lead"])
    return (reverse("go-live-request", args=[rb.pk]), {},
            lambda: GoLiveRequest.objects.filter(runbook=rb).exists())


def setup_go_live_approve(rb, users):
    sign_off_through(rb, 4, users["member"], users["lead"])
    actions.request_go_live(users["requester"], rb)
    return (reverse("go-live-approve", args=[rb.pk]), {},
            lambda: GoLiveApproval.objects.filter(request__runbook=rb).exists())


def setup_contact(rb, users):
    field = rb.template.contact_fields.first()
    return (reverse("contact-edit", args=[rb.pk, field.pk]), {"value": "Ana - ana@example.com"},
            lambda: ContactValue.objects.get(runbook=rb, field=field).value == "Ana - ana@example.com")


def setup_start_runbook(rb, users):
    return (reverse("runbook-start"), {"template": rb.template_id, "name": "second"},
            lambda: Runbook.objects.filter(name="second").exists())


def setup_job_run(rb, users):
    RunbookSource.objects.create(runbook=rb, name="main", path="/tmp/none.db")
    return (reverse("job-run", args=[rb.pk, "backup"]), {},
            lambda: TaskRun.objects.filter(runbook=rb, kind="backup").exists())


def setup_lead_job_run(rb, users):
    """A job that changes production (do-rollback) is started by members of the lead group only."""
    sign_off_through(rb, 1, users["member"], users["lead"])  # the Rollback Plan opens
    return (reverse("job-run", args=[rb.pk, "do-rollback"]), {},
            lambda: TaskRun.objects.filter(runbook=rb, kind="do-rollback").exists())


def setup_job_cancel(rb, users):
    run = TaskRun.objects.create(runbook=rb, kind="backup", started_by=users["member"],
                                 state=TaskRun.RUNNING)
    return (reverse("run-cancel", args=[rb.pk, run.pk]), {},
            lambda: TaskRun.objects.get(pk=run.pk).cancel_requested)


def setup_runbook_settings(rb, users):
    return (reverse("runbook-settings", args=[rb.pk]),
            {"sources": "", "target_url": "postgres://app:pw-1@db.example.com:5432/app"},
            lambda: RunbookTarget.objects.filter(runbook=rb).exists())


def setup_schema_approve(rb, users):
    import hashlib
    from pathlib import Path

    from django.conf import settings

    text = "CREATE TABLE a (id int);"
    run = TaskRun.objects.create(runbook=rb, kind="schema", state=TaskRun.SUCCEEDED,
                                 started_by=users["member"])
    rel = f"role-matrix/run-{run.pk}/unified_schema.sql"
    path = Path(settings.MEDIA_ROOT) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    ev = Evidence.objects.create(run=run, name="unified_schema.sql", kind="artifact", path=rel,
                                 sha256=hashlib.sha256(text.encode()).hexdigest(),
                                 size=len(text))
    return (reverse("schema-approve", args=[rb.pk, ev.pk]), {"comment": "ok"},
            lambda: SchemaApproval.objects.filter(runbook=rb).exists())


def setup_check_settings(rb, users):
    from tests.deploychecks.test_check_settings_views import HOOK

    data = {"page_load_ms": "1500", "api_ms": "400", "db_query_ms": "80",
            "pool_utilization_pct": "70", "app_uptime_pct": "99.9", "db_uptime_pct": "99.95",
            "uptime_window_hours": "24", "degradation_pct": "40", "error_rate_pct": "2",
            "env_rules": "{}", "health_path": "/healthz", "http_paths": "[]",
            "performance_queries": "[]", "monitor_interval_seconds": "0", "webhook_url": HOOK}
    return (reverse("check-settings", args=[rb.pk]), data,
            lambda: RunbookCheckSettings.objects.filter(runbook=rb, api_ms=400).exists())


def setup_proof_settings(rb, users):
    from deploychecks.models import RunbookProofSettings
    from tests.deploychecks.test_proof_settings_views import form_data

    return (reverse("proof-settings", args=[rb.pk]), form_data(do_app_id="app-roles"),
            lambda: RunbookProofSettings.objects.filter(runbook=rb, do_app_id="app-roles").exists())


def setup_override(rb, users):
    from checklist import rules

    bound = rules.bound_kinds(rb)
    st = next(st for st in states_of(rb, gated(rb)[0])
              if st.item_id in bound and rules.SCHEMA_APPROVAL not in bound[st.item_id])
    return (reverse("item-override", args=[rb.pk, st.pk]),
            {"reason": "done by hand on the host", "version": st.version},
            lambda: ItemState.objects.get(pk=st.pk).checked)


RELEASE = (Path(__file__).resolve().parent / "checklists" / "release.md").read_bytes()


def setup_template_import(rb, users):
    return (reverse("template-import"), {"text": RELEASE.decode(), "name": "imported by role"},
            lambda: ChecklistTemplate.objects.filter(name="imported by role").exists())


def setup_item_binding(rb, users):
    item = Item.objects.filter(group__phase__template=rb.template,
                               job_bindings__isnull=True).order_by("pk").first()
    return (reverse("item-binding", args=[rb.template_id, item.pk]), {"binding": "backup"},
            lambda: JobBinding.objects.filter(item=item, kind="backup").exists())


def setup_phase_gating(rb, users):
    # Gating changes only before a runbook starts on the version: a version nobody started.
    template, _ = actions.import_template(RELEASE, name="gating by role")
    phase = template.phases.get(kind=Phase.GATED, order=template.phases.order_by(
        "order").values_list("order", flat=True).first())
    return (reverse("phase-gating", args=[template.pk, phase.pk]), {"kind": Phase.OPEN},
            lambda: Phase.objects.get(pk=phase.pk).kind == Phase.OPEN)


MATRIX = {
    "tick": (setup_tick, WORKERS),
    "untick": (setup_untick, WORKERS),
    "note": (setup_note, WORKERS),
    "not-applicable": (setup_not_applicable, WORKERS),
    "applicable": (setup_applicable, WORKERS),
    "sign-off": (setup_sign_off, LEADS),
    "go-live-request": (setup_go_live_request, LEADS),
    "go-live-approve": (setup_go_live_approve, LEAD_GROUP),
    "contact": (setup_contact, LEADS),
    "start-runbook": (setup_start_runbook, LEADS),
    "job-run": (setup_job_run, WORKERS),
    "lead-job-run": (setup_lead_job_run, LEAD_GROUP),
    "job-cancel": (setup_job_cancel, WORKERS),
    "runbook-settings": (setup_runbook_settings, LEADS),
    "schema-approve": (setup_schema_approve, LEAD_GROUP),
    "check-settings": (setup_check_settings, LEADS),
    "proof-settings": (setup_proof_settings, LEADS),
    "override": (setup_override, LEADS),
    "template-import": (setup_template_import, LEADS),
    "item-binding": (setup_item_binding, LEADS),
    "phase-gating": (setup_phase_gating, LEADS),
}


@pytest.mark.parametrize("role", ["member", "lead", "auditor", "admin", "nobody", "anonymous"])
@pytest.mark.parametrize("action", list(MATRIX))
def test_write_is_allowed_only_for_its_roles(client, runbook, users, role, action):
    users["requester"] = make_user("requester", "lead")
    setup, allowed = MATRIX[action]
    url, data, changed = setup(runbook, users)
    denied_before = AuditEvent.objects.filter(action="denied").count()
    if role != "anonymous":
        client.force_login(users[role])

    response = client.post(url, data, HTTP_HX_REQUEST="true")

    if role == "anonymous":  # sent to the login page (htmx: HX-Redirect), nothing changed
        assert response.status_code in (302, 401, 403) or (
            response.status_code == 204 and "login" in response.get("HX-Redirect", "")), \
            response.status_code
        assert not changed()
    elif role in allowed:
        assert response.status_code in (200, 204, 302), response.content[:500]
        assert changed()
    else:
        assert response.status_code == 403
        assert not changed()
        assert AuditEvent.objects.filter(action="denied").count() == denied_before + 1


@pytest.mark.parametrize("action", list(MATRIX))
def test_anonymous_writes_are_sent_to_login_and_change_nothing(client, runbook, users, action):
    users["requester"] = make_user("requester", "lead")
    url, data, changed = MATRIX[action][0](runbook, users)
    response = client.post(url, data)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not changed()


def test_get_never_writes(client, runbook, users):
    client.force_login(users["member"])
    st = _first_state(runbook)
    response = client.get(reverse("item-tick", args=[runbook.pk, st.pk]))
    assert response.status_code == 405
    assert not ItemState.objects.get(pk=st.pk).checked


def test_post_without_csrf_token_is_refused(runbook, users):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["member"])
    st = _first_state(runbook)
    response = client.post(reverse("item-tick", args=[runbook.pk, st.pk]))
    assert response.status_code == 403
    assert not ItemState.objects.get(pk=st.pk).checked
