"""Approving unified_schema.sql from its item on the runbook page: the file and its sha256, the
approval that stands (or was voided by a newer file), and the lead's Approve button."""
import hashlib

import pytest
from django.urls import reverse

from checklist.models import AuditEvent, Evidence, ItemState, SchemaApproval, TaskRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def make_schema(runbook, user, media, text):
    """What the schema job leaves behind: a succeeded run and its unified_schema.sql."""
    run = TaskRun.objects.create(runbook=runbook, kind="schema", state=TaskRun.SUCCEEDED,
                                 started_by=user)
    rel = f"runs/{run.pk}/unified_schema.sql"
    (media / rel).parent.mkdir(parents=True)
    (media / rel).write_text(text)
    return Evidence.objects.create(run=run, name="unified_schema.sql", kind="artifact", path=rel,
                                   sha256=hashlib.sha256(text.encode()).hexdigest(),
                                   size=len(text))


def approval_item(runbook):
    return ItemState.objects.get(runbook=runbook,
                                 item__text="`unified_schema.sql` reviewed and approved")


def page(client, runbook):
    body = client.get(reverse("runbook", args=[runbook.pk])).content.decode()
    row = body.split(f'id="item-{approval_item(runbook).pk}"', 1)[1].split("</li>", 1)[0]
    return row


def test_the_item_shows_the_newest_file_and_its_sha256(client, users, runbook, media):
    make_schema(runbook, users["member"], media, "CREATE TABLE a (id int);")
    newest = make_schema(runbook, users["member"], media, "CREATE TABLE b (id int);")
    row = page(login(client, users["member"]), runbook)
    assert newest.sha256 in row
    assert reverse("evidence-download", args=[runbook.pk, newest.pk]) in row
    assert "Not approved" in row
    assert "Approve this unified_schema.sql" not in row  # members do not approve


def test_lead_approves_and_the_item_is_ticked(client, users, runbook, media):
    evidence = make_schema(runbook, users["member"], media, "CREATE TABLE a (id int);")
    login(client, users["lead"])
    assert "Approve this unified_schema.sql" in page(client, runbook)
    response = client.post(reverse("schema-approve", args=[runbook.pk, evidence.pk]),
                           {"comment": "reviewed with the DBA"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert approval_item(runbook).checked
    approval = SchemaApproval.objects.get(runbook=runbook)
    assert approval.sha256 == evidence.sha256 and approval.lead == users["lead"]
    row = response.content.decode().split(f'id="item-{approval_item(runbook).pk}"', 1)[1]
    row = row.split("</li>", 1)[0]
    assert "✔ Approved</span> by lead" in row
    assert f"for sha256 <code>{evidence.sha256}</code>" in row
    assert "reviewed with the DBA" in row
    assert "Approve this unified_schema.sql" not in row


@pytest.mark.parametrize("role", ["member", "auditor", "admin"])
def test_only_leads_approve(client, users, runbook, media, role):
    evidence = make_schema(runbook, users["member"], media, "CREATE TABLE a (id int);")
    response = login(client, users[role]).post(
        reverse("schema-approve", args=[runbook.pk, evidence.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert not SchemaApproval.objects.exists()
    assert not approval_item(runbook).checked
    assert AuditEvent.objects.filter(action="denied", actor_label=role,
                                     after__attempted="schema-approve").exists()


def test_a_newer_schema_voids_the_approval(client, users, runbook, media):
    old = make_schema(runbook, users["member"], media, "CREATE TABLE a (id int);")
    login(client, users["lead"]).post(reverse("schema-approve", args=[runbook.pk, old.pk]))
    newer = make_schema(runbook, users["member"], media, "CREATE TABLE a (id bigint);")
    assert newer.sha256 != old.sha256
    row = page(client, runbook)
    assert "✔ Approved" not in row
    assert "Not approved" in row
    assert f"The approval by lead" in row and "was voided by this newer file" in row
    assert old.sha256[:12] in row and newer.sha256 in row
    assert "Approve this unified_schema.sql" in row  # the new file can be approved


def test_an_older_file_cannot_be_approved(client, users, runbook, media):
    old = make_schema(runbook, users["member"], media, "CREATE TABLE a (id int);")
    make_schema(runbook, users["member"], media, "CREATE TABLE a (id bigint);")
    response = login(client, users["lead"]).post(
        reverse("schema-approve", args=[runbook.pk, old.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    assert "Only the newest unified_schema.sql can be approved." in response.content.decode()
    assert not SchemaApproval.objects.exists()
