"""A lead binds items of any imported checklist to jobs (or to one success criterion or rollback
trigger) on its page, helped by suggestions made from the item text; bindings are audited and apply
to runbooks started after they change, a running runbook keeping the ones it started with."""
import html
from pathlib import Path

import pytest

from checklist import actions, jobs
from checklist.audit import AuditEvent
from checklist.binding_suggest import suggest
from checklist.models import Item, JobBinding

pytestmark = pytest.mark.django_db

CHECKLISTS = Path(__file__).resolve().parent / "checklists"


@pytest.mark.parametrize(("text", "first"), [
    ("Database backup taken", "backup"),
    ("Take a full backup", "backup"),
    ("Verify the backup restores", "backup"),
    ("TLS certificate valid for 30 more days", "check-http"),
    ("SSL connection verified", "check-http"),
    ("Health check endpoint returns 200", "check-http"),
    ("Migrations executed on production", "migrate"),
    ("Migration executed and verified", "migrate"),
    ("Row counts validated", "validate"),
    ("Environment variables configured", "check-env"),
    ("Rollback rehearsed", "rollback-rehearsal"),
])
def test_suggestions_from_item_text(text, first):
    assert suggest(text, jobs.REGISTRY)[0] == first


def test_suggestions_offer_both_checks_for_tls_and_skip_what_is_bound_or_unknown():
    assert suggest("SSL connection verified") == ["check-http", "check-connectivity"]
    assert suggest("SSL connection verified", exclude=("check-http",)) == ["check-connectivity"]
    assert suggest("Database backup taken", known={"migrate"}) == []
    assert suggest("Notify the support team") == []


def _release():
    template, _ = actions.import_template((CHECKLISTS / "release.md").read_bytes())
    return template, Item.objects.get(group__phase__template=template, text="Database backup taken")


def test_the_page_suggests_and_one_click_binds(client, users):
    template, item = _release()
    client.force_login(users["lead"])
    page = html.unescape(client.get(f"/templates/{template.pk}/").content.decode())
    assert "Bind to backup?" in page
    response = client.post(f"/templates/{template.pk}/items/{item.pk}/binding/",
                           {"kind": "backup"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "⚙ backup" in response.content.decode()
    assert list(JobBinding.objects.filter(item=item).values_list("kind", flat=True)) == ["backup"]
    event = AuditEvent.objects.get(action="job-binding")
    assert event.after == {"template": str(template), "item": item.text, "kind": "backup",
                           "bound": True}
    client.post(f"/templates/{template.pk}/items/{item.pk}/binding/",
                {"kind": "backup", "unbind": "1"})
    assert not JobBinding.objects.filter(item=item).exists()
    assert AuditEvent.objects.filter(action="job-unbinding").count() == 1


def test_a_bound_item_is_earned_only_by_its_job_in_a_new_runbook(users):
    from checklist import rules

    template, item = _release()
    actions.bind_item(users["lead"], item, "backup")
    runbook = actions.start_runbook(users["lead"], template, "release 1")
    state = runbook.item_states.get(item=item)
    facts = rules.RunbookFacts.load(runbook, states=False)
    assert not rules.can_tick(users["member"], state, facts)
    assert [i.pk for i in jobs.items_for(runbook, "backup")] == [item.pk]


@pytest.mark.parametrize("role", ["member", "auditor"])
def test_only_leads_bind(client, users, role):
    template, item = _release()
    client.force_login(users[role])
    response = client.post(f"/templates/{template.pk}/items/{item.pk}/binding/", {"kind": "backup"})
    assert response.status_code == 403
    assert not JobBinding.objects.exists()
    assert AuditEvent.objects.filter(action="denied", actor=users[role]).exists()


def test_an_unknown_kind_or_part_is_400(client, users):
    template, item = _release()
    client.force_login(users["lead"])
    url = f"/templates/{template.pk}/items/{item.pk}/binding/"
    response = client.post(url, {"kind": "rm -rf"})
    assert response.status_code == 400 and "no job kind 'rm -rf'" in html.unescape(
        response.content.decode())
    for bad in ("success-criteria", "success-criteria/rm -rf", "backup/page_load"):
        response = client.post(url, {"binding": bad})
        assert response.status_code == 400, bad
        assert "part:" in html.unescape(response.content.decode())
    assert not JobBinding.objects.exists()
    assert client.get(url).status_code == 405


def test_a_running_runbook_keeps_its_bindings_and_later_ones_take_the_change(client, users):
    from checklist import rules

    template, item = _release()
    other = Item.objects.get(group__phase__template=template, text="Changelog updated")
    actions.bind_item(users["lead"], item, "backup")
    running = actions.start_runbook(users["lead"], template, "release 1")
    client.force_login(users["lead"])
    url = f"/templates/{template.pk}/items/{other.pk}/binding/"
    response = client.post(url, {"binding": "backup"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "the 1 runbook already started on this version keeps the bindings it started with" in page
    client.post(f"/templates/{template.pk}/items/{item.pk}/binding/",
                {"binding": "backup", "unbind": "1"})
    event = AuditEvent.objects.filter(action="job-binding").latest("seq")
    assert event.after["runbooks_keeping_theirs"] == 1
    later = actions.start_runbook(users["lead"], template, "release 2")
    assert [i.pk for i in jobs.items_for(running, "backup")] == [item.pk]
    assert [i.pk for i in jobs.items_for(later, "backup")] == [other.pk]
    # The running runbook's own page and API show its own bindings, and its rules follow them.
    for runbook, bound, free in ((running, item, other), (later, other, item)):
        body = client.get(f"/api/runbooks/{runbook.pk}/").json()
        listed = {i["text"]: i.get("jobs", []) for p in body["phases"] for g in p["groups"]
                  for i in g["items"]}
        assert listed[bound.text] == ["backup"] and listed[free.text] == []
        facts = rules.RunbookFacts.load(runbook, states=False)
        assert not rules.can_tick(users["member"], runbook.item_states.get(item=bound), facts)
        assert rules.can_tick(users["member"], runbook.item_states.get(item=free), facts)
    start = AuditEvent.objects.filter(action="runbook-start").latest("seq")
    assert start.after["bindings"] == 1


def test_an_item_binds_to_one_criterion_or_trigger_and_follows_that_outcome_alone(client, users):
    from checklist.models import ItemState, TaskRun
    from checklist.job_context import JobContext, JobResult
    from checklist.runner import earn

    template, _ = actions.import_template((CHECKLISTS / "release.md").read_bytes())
    items = list(Item.objects.filter(group__phase__template=template).order_by("pk")[:3])
    client.force_login(users["lead"])
    page = html.unescape(client.get(f"/templates/{template.pk}/").content.decode())
    # Choices of the list, each part in its own words (not any checklist's item text).
    assert "success-criteria: Application health samples up over the window (monitoring)" in page
    assert ("rollback-triggers: Validation found missing, mismatched or rejected rows"
            in page)
    for item, value in zip(items, ("success-criteria/app_uptime", "success-criteria/db_uptime",
                                   "rollback-triggers/data-corruption")):
        assert client.post(f"/templates/{template.pk}/items/{item.pk}/binding/",
                           {"binding": value}).status_code == 302
    event = AuditEvent.objects.filter(action="job-binding").latest("seq")
    assert event.after["part"] == "data-corruption"
    page = html.unescape(client.get(f"/templates/{template.pk}/").content.decode())
    assert "⚙ success-criteria: Database samples up over the window (monitoring)" in page
    runbook = actions.start_runbook(users["lead"], template, "parts")
    run = TaskRun.objects.create(runbook=runbook, kind="success-criteria",
                                 started_by=users["lead"], state=TaskRun.SUCCEEDED)
    run.items.set(jobs.items_for(runbook, "success-criteria"))
    assert [i.pk for i in run.items.all().order_by("pk")] == [items[0].pk, items[1].pk]
    result = JobResult(ok=False, summary="", item_outcomes={"app_uptime": True, "db_uptime": False},
                       item_notes={"app_uptime": "app_uptime: 99.99"})
    earn(run, JobContext(run, {}), result, TaskRun.SUCCEEDED)
    states = {s.item_id: s for s in ItemState.objects.filter(runbook=runbook)}
    assert states[items[0].pk].checked and states[items[0].pk].earned_run_id == run.pk
    assert not states[items[1].pk].checked and not states[items[2].pk].checked


def test_suggestions_name_criteria_and_triggers():
    assert suggest("Application uptime > 99.9%") == ["success-criteria/app_uptime"]
    assert suggest("Database uptime > 99.95%") == ["success-criteria/db_uptime"]
    assert suggest("Data corruption detected") == ["rollback-triggers/data-corruption"]
    assert suggest("Database uptime ok", exclude=("success-criteria",)) == []
