"""A lead binds items of any imported checklist to jobs on its page, helped by suggestions made
from the item text; bindings are audited and fixed once a runbook starts on the version."""
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


def test_an_unknown_kind_is_400_and_a_started_version_is_409(client, users):
    template, item = _release()
    client.force_login(users["lead"])
    url = f"/templates/{template.pk}/items/{item.pk}/binding/"
    response = client.post(url, {"kind": "rm -rf"})
    assert response.status_code == 400 and "no job kind 'rm -rf'" in html.unescape(
        response.content.decode())
    actions.start_runbook(users["lead"], template, "running")
    response = client.post(url, {"kind": "backup"})
    assert response.status_code == 409
    assert "Import a new version" in response.content.decode()
    assert not JobBinding.objects.exists()
    assert client.get(f"/templates/{template.pk}/items/{item.pk}/binding/").status_code == 405
