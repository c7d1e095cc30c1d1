"""The runbook's settings page: leads set sources and the target URL; others read, the server
refuses their writes; the target URL is never shown in full."""
import pytest
from django.urls import reverse

from checklist.models import AuditEvent, RunbookSource, RunbookTarget
from checklist.runbook_target import target_url

pytestmark = pytest.mark.django_db

URL = "postgresql://app:s3cret-pw@db.example:5432/mingus?sslmode=verify-full"


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def settings_url(runbook):
    return reverse("runbook-settings", args=[runbook.pk])


def test_lead_sets_sources_and_target(client, users, runbook):
    response = login(client, users["lead"]).post(settings_url(runbook), {
        "sources": "main /srv/mingus/main.db\nusers = /srv/mingus/users.db\n\n",
        "target_url": URL,
    })
    assert response.status_code == 302
    assert dict(RunbookSource.objects.filter(runbook=runbook).values_list("name", "path")) == {
        "main": "/srv/mingus/main.db", "users": "/srv/mingus/users.db"}
    assert target_url(runbook) == URL
    body = client.get(settings_url(runbook)).content.decode()
    assert "postgresql://app:***@db.example:5432/mingus" in body
    assert "s3cret-pw" not in body
    assert "Settings saved." in body
    assert "main /srv/mingus/main.db" in body  # the form starts from the stored sources
    assert AuditEvent.objects.filter(action="target", runbook=runbook).exists()


def test_an_empty_target_field_keeps_the_stored_url(client, users, runbook):
    login(client, users["lead"]).post(settings_url(runbook), {"sources": "", "target_url": URL})
    response = client.post(settings_url(runbook), {"sources": "main /tmp/main.db", "target_url": ""})
    assert response.status_code == 302
    runbook.refresh_from_db()
    assert target_url(runbook) == URL
    assert AuditEvent.objects.filter(action="target", runbook=runbook).count() == 1


def test_a_bad_url_is_refused_with_its_reason_and_nothing_is_stored(client, users, runbook):
    response = login(client, users["lead"]).post(settings_url(runbook), {
        "sources": "main /tmp/main.db", "target_url": "mysql://root:pw@db/x"})
    assert response.status_code == 400
    assert "The target must be a postgresql:// URL" in response.content.decode()
    assert not RunbookTarget.objects.filter(runbook=runbook).exists()
    assert not RunbookSource.objects.filter(runbook=runbook).exists()


def test_a_source_line_without_a_path_is_refused(client, users, runbook):
    response = login(client, users["lead"]).post(settings_url(runbook),
                                                 {"sources": "main\n", "target_url": ""})
    assert response.status_code == 400
    assert "Line 1: write a name, then the path." in response.content.decode()


@pytest.mark.parametrize("role", ["member", "auditor"])
def test_others_read_but_cannot_change(client, users, runbook, role):
    RunbookSource.objects.create(runbook=runbook, name="main", path="/srv/main.db")
    login(client, users["lead"]).post(settings_url(runbook), {"sources": "main /srv/main.db",
                                                              "target_url": URL})
    body = login(client, users[role]).get(settings_url(runbook)).content.decode()
    assert "/srv/main.db" in body and "postgresql://app:***@db.example" in body
    assert 'type="password"' not in body and "Save settings" not in body
    response = client.post(settings_url(runbook), {"sources": "evil /etc/passwd",
                                                   "target_url": "postgresql://x@evil/db"})
    assert response.status_code == 403
    assert list(RunbookSource.objects.filter(runbook=runbook).values_list("path", flat=True)) == [
        "/srv/main.db"]
    assert target_url(runbook) == URL
    assert AuditEvent.objects.filter(action="denied", actor_label=role,
                                     after__attempted="configure").exists()


def test_runbook_page_links_to_settings(client, users, runbook):
    body = login(client, users["member"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert f'href="{settings_url(runbook)}">Settings (read-only)</a>' in body
    body = login(client, users["lead"]).get(reverse("runbook", args=[runbook.pk])).content.decode()
    assert f'href="{settings_url(runbook)}">Settings</a>' in body
