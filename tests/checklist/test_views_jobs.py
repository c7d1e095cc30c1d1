"""Run buttons, starting and cancelling jobs from the page, and the run progress partial."""
import pytest
from django.urls import reverse

from checklist.models import AuditEvent, Runbook, RunbookSource, TaskRun

pytestmark = pytest.mark.django_db


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_run_button_only_for_workers_on_open_phases(client, users, runbook):
    body = login(client, users["member"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert reverse("job-run", args=[runbook.pk, "backup"]) in body  # Pre-Deployment is open
    assert reverse("job-run", args=[runbook.pk, "migrate"]) not in body  # Migration is locked
    body = login(client, users["auditor"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert "job-run" not in body and "/jobs/" not in body


def test_member_starts_a_job_from_the_page(client, users, runbook):
    RunbookSource.objects.create(runbook=runbook, name="main", path="/tmp/none.db")
    response = login(client, users["member"]).post(
        reverse("job-run", args=[runbook.pk, "backup"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run = TaskRun.objects.get(runbook=runbook, kind="backup")
    assert run.state == TaskRun.QUEUED and run.started_by == users["member"]
    assert f"Run #{run.pk}" in response.content.decode()
    assert "Cancel run" in response.content.decode()


def test_auditor_cannot_start_a_job(client, users, runbook):
    response = login(client, users["auditor"]).post(
        reverse("job-run", args=[runbook.pk, "backup"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert not TaskRun.objects.exists()
    assert AuditEvent.objects.filter(action="denied", after__attempted="job:backup").exists()


def test_cancel_and_progress_partial(client, users, runbook):
    run = TaskRun.objects.create(runbook=runbook, kind="backup", started_by=users["member"],
                                 state=TaskRun.RUNNING, percent=42.0, step="copying",
                                 rows=1200, eta_seconds=30, log="a\nb\nc")
    login(client, users["member"])
    url = reverse("run-detail", args=[runbook.pk, run.pk])
    partial = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=f"run-1-backup")
    assert partial.status_code == 200
    text = partial.content.decode()
    assert 'value="42"' in text and "Step: copying" in text and "1200 rows" in text
    client.post(reverse("run-cancel", args=[runbook.pk, run.pk]), HTTP_HX_REQUEST="true")
    run.refresh_from_db()
    assert run.cancel_requested
    TaskRun.objects.filter(pk=run.pk).update(state=TaskRun.CANCELLED)
    # An ended run answers 286 so htmx stops polling it.
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 286
    assert client.get(url).status_code == 200
