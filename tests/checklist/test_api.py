import pytest
from django.urls import reverse

from checklist import actions
from checklist.api import new_token
from checklist.models import AuditEvent

from .factories import gated, sign_off_through, states_of

pytestmark = pytest.mark.django_db


def test_runbook_document_shows_phases_items_and_status(client, runbook, users):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    client.force_login(users["auditor"])
    data = client.get(reverse("api-runbook", args=[runbook.pk])).json()
    assert [p["state"] for p in data["phases"]] == [
        "signed-off", "open", "locked", "locked", "open", "locked"]
    first = data["phases"][0]
    assert first["title"] == "Pre-Deployment Phase" and first["signed_off_by"] == "lead"
    items = [i for g in first["groups"] for i in g["items"]]
    item = next(i for i in items if i["tick_source"] == "by hand")
    assert item["checked"] and item["checked_by"] == "member" and item["checked_at"]
    assert item["earned_by"] is None and item["override"] is None
    # The first item is earned by the backup job: without it, a lead's override ticked it.
    bound = first["groups"][0]["items"][0]
    assert bound["tick_source"] == "overridden" and bound["earned_by"] is None
    assert bound["override"] == {"by": "lead", "reason": "moving the test runbook along"}
    # Counted as the page counts: the gated phases' items are the work; the rollback plan (its
    # trigger items fire when ticked) and the success criteria apart.
    status = data["status"]
    gated_items = sum(p["total"] for p in data["phases"] if p["kind"] == "gated")
    assert status["done"] == 32 and status["total"] == gated_items == 112
    assert status["rollback_triggers"] == {"fired": 0, "total": 4}
    assert [(p["title"], p["done"], p["total"]) for p in status["other_phases"]] == [
        ("Rollback Plan", 0, 12), ("Success Criteria", 0, 12)]
    assert status["all_items"] == {"done": 32, "total": 136}
    page = client.get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert f"Work: <strong>{status['done']} / {status['total']}</strong>" in page
    assert "Rollback triggers: <strong>0 of 4</strong>" in page
    ticks = data["status"]["ticks"]
    assert ticks["earned"] == 0 and ticks["overridden"] > 0
    assert ticks["overridden"] + ticks["by_hand"] + 1 == 32  # + the schema item, not applicable
    assert data["status"]["go_live"] == "not requested"
    assert data["phases"][2]["lock_reason"].startswith("Deployment opens when Migration")


def test_bearer_token_works_and_a_bad_one_does_not(client, runbook, users):
    key = new_token(users["auditor"], "ci")
    url = reverse("api-runbook", args=[runbook.pk])
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert client.get(url, HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert client.get(url).status_code == 401


def test_user_without_role_gets_403_and_an_audit_event(client, runbook, users):
    client.force_login(users["nobody"])
    response = client.get(reverse("api-runbook", args=[runbook.pk]))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="denied", actor=users["nobody"]).exists()


def test_unknown_runbook_is_404(client, users, runbook):
    client.force_login(users["auditor"])
    assert client.get(reverse("api-runbook", args=[999999])).status_code == 404
