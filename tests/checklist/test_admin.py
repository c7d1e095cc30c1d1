"""The admin writes only through audited actions, and a template version in use is read-only."""
import pytest
from django.urls import reverse

from checklist.actions import import_template
from checklist.api import new_token
from checklist.audit import AuditEvent
from checklist.models import ApiToken, Item, Runbook, RunbookSource, SignOff, TaskRun

from ..conftest import SEED
from .factories import gated, sign_off_through

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, users):
    client.force_login(users["admin"])
    return client


@pytest.fixture
def unused_item(db):
    template, _ = import_template(SEED.read_bytes(), name="Draft checklist")
    return Item.objects.filter(group__phase__template=template).first()


def _item_form(item, **changes):
    data = {"group": item.group_id, "order": item.order, "text": item.text,
            "if_applicable": "on" if item.if_applicable else "", "source_line": item.source_line or ""}
    data.update(changes)
    return data


def test_an_admin_edit_is_an_audited_action(admin_client, unused_item):
    url = reverse("admin:checklist_item_change", args=[unused_item.pk])
    response = admin_client.post(url, _item_form(unused_item, text="Reworded before use"),
                                 REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 302, response.content[:500]
    unused_item.refresh_from_db()
    assert unused_item.text == "Reworded before use"
    event = AuditEvent.objects.get(action="admin-change")
    assert event.actor_label == "admin" and event.object_type == "Item"
    assert event.before["text"] != "Reworded before use" and event.after["text"] == "Reworded before use"
    assert event.client_addr == "192.0.2.10" and event.request_id


def test_a_template_version_in_use_is_read_only(admin_client, runbook):
    item = Item.objects.filter(group__phase__template=runbook.template).first()
    url = reverse("admin:checklist_item_change", args=[item.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = admin_client.post(url, _item_form(item, text="Rewritten after sign-off"))
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.text != "Rewritten after sign-off"
    assert not AuditEvent.objects.filter(action__startswith="admin-").exists()
    template_url = reverse("admin:checklist_checklisttemplate_delete", args=[runbook.template_id])
    assert admin_client.post(template_url, {"post": "yes"}).status_code == 403


def test_the_rule_refuses_even_when_the_admin_is_bypassed(users, runbook):
    from checklist import actions

    item = Item.objects.filter(group__phase__template=runbook.template).first()
    item.text = "forged"
    with pytest.raises(actions.Refused):
        actions.admin_save(users["admin"], item, True)
    assert Item.objects.get(pk=item.pk).text != "forged"
    assert AuditEvent.objects.filter(action="denied", after__attempted="admin-save").exists()


@pytest.mark.parametrize("model", [Runbook, SignOff, TaskRun, AuditEvent])
def test_state_the_app_owns_cannot_be_changed_or_deleted_in_the_admin(admin_client, users,
                                                                      runbook, model):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    TaskRun.objects.create(runbook=runbook, kind="backup", state="failed")
    obj = model.objects.first()
    name = f"admin:checklist_{model._meta.model_name}"
    before = model.objects.count()
    assert admin_client.post(reverse(f"{name}_delete", args=[obj.pk]), {"post": "yes"}
                             ).status_code == 403
    assert admin_client.post(reverse(f"{name}_change", args=[obj.pk]), {}).status_code == 403
    assert model.objects.count() == before


def test_source_edits_lock_the_runbook_and_are_audited(admin_client, runbook):
    source = RunbookSource.objects.create(runbook=runbook, name="mingus", path="/data/old.db")
    revision = Runbook.objects.get(pk=runbook.pk).revision
    url = reverse("admin:checklist_runbooksource_change", args=[source.pk])
    response = admin_client.post(url, {"runbook": runbook.pk, "name": "mingus",
                                       "path": "/data/new.db"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin-change")
    assert event.runbook_id == runbook.pk and event.after["path"] == "/data/new.db"
    assert event.before["path"] == "/data/old.db"
    assert Runbook.objects.get(pk=runbook.pk).revision == revision + 1


def test_revoking_a_token_in_the_admin_is_audited(admin_client, users):
    new_token(users["member"], "ci")
    token = ApiToken.objects.get()
    url = reverse("admin:checklist_apitoken_delete", args=[token.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not ApiToken.objects.exists()
    event = AuditEvent.objects.get(action="admin-delete")
    assert event.before["name"] == "ci" and event.object_type == "ApiToken"


def test_check_records_are_read_only_in_the_admin(admin_client, runbook):
    from deploychecks.models import MonitorSample

    sample = MonitorSample.objects.create(runbook=runbook, kind="health", ok=True)
    url = reverse("admin:deploychecks_monitorsample_delete", args=[sample.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert MonitorSample.objects.filter(pk=sample.pk).exists()
