"""Issue 10, parts 1 and 2: a job-bound item is earned by its job or overridden by a lead, and an
earned tick stands only while its evidence does."""
import json
import sqlite3
import zipfile
from io import BytesIO

import pytest
from django.conf import settings
from django.urls import reverse

from checklist import actions, jobs
from checklist.models import AuditEvent, ItemState, SignOff
from checklist.tasks import verify_evidence_task
from tests.conftest import ended, wait_for_run

from .factories import complete_phase, gated

HX = {"HTTP_HX_REQUEST": "true"}
BACKED_UP = "All 5 SQLite databases backed up and verified"
SCHEMA_ITEM = "`unified_schema.sql` reviewed and approved"


def state(runbook, text):
    return ItemState.objects.select_related("item__group__phase").get(runbook=runbook,
                                                                       item__text=text)


def api_item(client, runbook, text):
    data = client.get(reverse("api-runbook", args=[runbook.pk])).json()
    items = [i for p in data["phases"] for g in p["groups"] for i in g["items"]]
    return next(i for i in items if i["text"] == text), data


# --- part 1: earned or overridden ----------------------------------------------------------------

@pytest.mark.django_db
def test_member_hand_tick_of_a_bound_item_is_refused_naming_the_job(client, runbook, users):
    st = state(runbook, BACKED_UP)
    client.force_login(users["member"])
    response = client.post(reverse("item-tick", args=[runbook.pk, st.pk]))
    assert response.status_code == 409
    assert "run the backup job" in response.content.decode()
    st.refresh_from_db()
    assert not st.checked
    denied = AuditEvent.objects.filter(action="denied", actor=users["member"]).last()
    assert denied.after["attempted"] == "tick" and "backup job" in denied.after["reason"]
    # A lead cannot tick it by hand either: only an override, which says why.
    with pytest.raises(actions.Refused):
        actions.tick(users["lead"], st)


@pytest.mark.django_db
def test_override_is_a_leads_and_needs_a_reason(client, runbook, users):
    st = state(runbook, BACKED_UP)
    url = reverse("item-override", args=[runbook.pk, st.pk])
    client.force_login(users["member"])
    assert client.post(url, {"reason": "done elsewhere"}).status_code == 403
    client.force_login(users["lead"])
    response = client.post(url, {"reason": "  "})
    assert response.status_code == 400 and "reason" in response.content.decode()
    st.refresh_from_db()
    assert not st.checked


@pytest.mark.django_db
def test_the_schema_approval_item_is_ticked_only_by_an_approval(runbook, users):
    st = state(runbook, SCHEMA_ITEM)
    for act in (lambda: actions.tick(users["member"], st),
                lambda: actions.override(users["lead"], st, "I read it")):
        with pytest.raises(actions.Refused) as refused:
            act()
        assert refused.value.status == 409 and "approval of unified_schema.sql" in str(refused.value)
    st.refresh_from_db()
    assert not st.checked


@pytest.mark.django_db
def test_a_lead_override_shows_as_an_override_everywhere(client, runbook, users):
    st = state(runbook, BACKED_UP)
    client.force_login(users["lead"])
    response = client.post(reverse("item-override", args=[runbook.pk, st.pk]),
                           {"reason": "backed up by the DBA, ticket OPS-7"}, **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "tick-override" in body and "Override: backed up by the DBA, ticket OPS-7" in body
    assert "earned 0, overridden 1, by hand 0" in body  # the status block, swapped out of band

    st.refresh_from_db()
    assert st.checked and st.overridden and not st.earned_by
    event = AuditEvent.objects.filter(action="override").get()
    assert event.actor == users["lead"] and event.after["override_reason"].startswith("backed up")

    client.force_login(users["auditor"])
    page = client.get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert "tick-override" in page and "OPS-7" in page
    item, data = api_item(client, runbook, BACKED_UP)
    assert item["tick_source"] == "overridden" and item["earned_by"] is None
    assert item["override"] == {"by": "lead", "reason": "backed up by the DBA, ticket OPS-7"}
    assert data["status"]["ticks"] == {"earned": 0, "overridden": 1, "by_hand": 0}

    rows = client.get(reverse("history-json", args=[runbook.pk])).content.decode()
    assert '"override"' in rows and "OPS-7" in rows
    pack = zipfile.ZipFile(BytesIO(b"".join(
        client.get(reverse("evidence-pack", args=[runbook.pk])).streaming_content)))
    doc = json.loads(pack.read("runbook.json"))
    packed = next(i for p in doc["phases"] for g in p["groups"] for i in g["items"]
                  if i["text"] == BACKED_UP)
    assert packed["override"]["reason"] == "backed up by the DBA, ticket OPS-7"
    assert "OVERRIDE by lead: backed up by the DBA" in pack.read("report.html").decode()


# --- part 2: evidence stays true (a real worker) ------------------------------------------------

def small_source(path):
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
        conn.executemany("INSERT INTO users (email) VALUES (?)", [("a@x",), ("b@x",)])
    return path


def start(client, runbook, kind):
    response = client.post(f"/api/runbooks/{runbook.pk}/jobs/", {"kind": kind},
                           content_type="application/json")
    assert response.status_code == 202, response.content
    from checklist.models import TaskRun

    return wait_for_run(TaskRun.objects.get(pk=response.json()["id"]), ended)


def earned_backup(client, runbook, users, tmp_path):
    source = small_source(tmp_path / "app.db")
    actions.set_sources(users["lead"], runbook, {"app": str(source)})
    client.force_login(users["member"])
    run = start(client, runbook, "backup")
    assert run.state == "succeeded", run.error + run.log
    return run, source


@pytest.mark.worker
def test_a_failed_later_run_withdraws_earned_ticks_and_the_sign_offs_on_them(
        client, runbook, users, worker, tmp_path):
    run, source = earned_backup(client, runbook, users, tmp_path)
    earned = state(runbook, BACKED_UP)
    assert earned.checked and earned.earned_run_id == run.pk
    item, _ = api_item(client, runbook, BACKED_UP)
    assert item["tick_source"] == "earned" and item["earned_by"] == run.pk
    first = gated(runbook)[0]
    complete_phase(runbook, first, users["member"])
    actions.sign_off(users["lead"], runbook, first, "pre-deployment done")

    source.write_bytes(b"this is no longer a SQLite database" * 100)
    failed = start(client, runbook, "backup")
    assert failed.state == "failed"

    earned.refresh_from_db()
    assert not earned.checked and not earned.earned_by
    withdrawn = AuditEvent.objects.filter(action="tick-withdrawn", item=earned.item).get()
    assert withdrawn.actor is None and f"backup run #{failed.pk} failed" in withdrawn.after["reason"]
    sign_off = SignOff.objects.get(runbook=runbook, phase=first)
    assert sign_off.withdrawn_at is not None and "Earned tick withdrawn" in sign_off.withdrawn_reason
    # Overrides are people's decisions: a failed run does not undo them.
    assert all(s.checked for s in ItemState.objects.filter(runbook=runbook, overridden=True))


@pytest.mark.worker
def test_changed_evidence_withdraws_its_ticks_in_the_job_path_never_on_a_read(
        client, runbook, users, worker, tmp_path):
    run, _ = earned_backup(client, runbook, users, tmp_path)
    manifest = next(e for e in run.evidence.all() if e.kind == "artifact")
    (settings.MEDIA_ROOT / manifest.path).write_bytes(b"forged manifest")

    client.force_login(users["lead"])
    assert client.get(reverse("runbook", args=[runbook.pk])).status_code == 200
    assert client.get(reverse("api-runbook", args=[runbook.pk])).status_code == 200
    assert state(runbook, BACKED_UP).checked  # a GET never writes

    assert verify_evidence_task() == len(jobs.items_for(runbook, "backup"))
    earned = state(runbook, BACKED_UP)
    assert not earned.checked
    event = AuditEvent.objects.filter(action="tick-withdrawn", item=earned.item).get()
    assert f"evidence of backup run #{run.pk} no longer holds" in event.after["reason"]
    assert manifest.name in event.after["reason"]
