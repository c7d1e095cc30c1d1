"""Secrets: the broker carries only the run id (read back from the real Redis queue); parameters
live on the TaskRun row, secret ones encrypted and shown as ***; credentials in any URL-like or
key=value form, well-formed or not, never reach a 400 page, a 'denied' audit event or an export."""
import json
import uuid

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from checklist import job_actions, jobs, params
from checklist.api import new_token
from checklist.command_job import command_job
from checklist.jobs import JobKind
from checklist.models import AuditEvent, RunbookSource, TaskRun
from checklist.params import Param
from mingus_deploy.celery import app as celery_app
from migration.redact import scrub

from tests.conftest import assert_secret_absent

SECRET = "Tok3n-Zz81-never-stored"


@pytest.fixture
def secret_kind(monkeypatch):
    """A kind with a secret parameter (none of the shipped kinds takes one yet)."""
    kind = JobKind("secret-probe", "Probe", command_job, needs_sources=False,
                   params=(Param("token", "str", "an API token", secret=True, max_length=200),
                           Param("samples", "int", min=1, max=10)))
    monkeypatch.setitem(jobs.REGISTRY, kind.name, kind)
    return kind


@pytest.fixture
def own_queue():
    queue = f"test-msg-{uuid.uuid4().hex[:8]}"
    old = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    yield queue
    celery_app.conf.task_default_queue = old
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)


@pytest.mark.django_db(transaction=True)
def test_the_broker_message_carries_only_the_run_id(runbook, users, secret_kind, own_queue):
    run = job_actions.start_job(users["member"], runbook, "secret-probe",
                         {"token": SECRET, "samples": "3"})
    raw = redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange(own_queue, 0, -1)
    assert len(raw) == 1
    message = json.loads(raw[0])
    import base64

    body = json.loads(base64.b64decode(message["body"]))
    args, kwargs, _ = body
    assert args == [run.pk] and kwargs == {}
    assert SECRET.encode() not in raw[0] and SECRET not in json.dumps(body)
    # On the row: encrypted, and the worker gets it back.
    run.refresh_from_db()
    assert run.params["samples"] == 3 and set(run.params["token"]) == {"encrypted"}
    assert params.from_storage(run.params) == ({"token": SECRET, "samples": 3}, [SECRET])
    assert params.shown(run.params) == {"token": "***", "samples": 3}
    start = AuditEvent.objects.get(action="job-start")
    assert start.after["params"] == {"token": "***", "samples": 3}
    assert_secret_absent(SECRET)


@pytest.mark.django_db
def test_the_api_shows_a_secret_parameter_masked(client, runbook, users, secret_kind):
    key = new_token(users["member"], "t")
    response = client.post(reverse("api-runbook-jobs", args=[runbook.pk]),
                           data=json.dumps({"kind": "secret-probe", "params": {"token": SECRET}}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 202
    assert response.json()["params"] == {"token": "***"}
    assert SECRET not in repr(TaskRun.objects.values_list("params", flat=True))


@pytest.mark.parametrize("text,secret", [
    ("postgresql//app:Pw-4471x@db.example.com:5432/app", "Pw-4471x"),
    ("app:Pw-4472y@db.example.com:5432/app", "Pw-4472y"),
    ("postgres://app:Pw-4473z@db/app", "Pw-4473z"),
    ("host=db user=app password=Pw-4474w", "Pw-4474w"),
    ("postgres://app@db/app?sslmode=require&password=Pw-4475v", "Pw-4475v"),
    ("https://hooks.example.com/x?token=Pw-4476u", "Pw-4476u"),
    ("app:P@ss-4477t@db.example.com", "ss-4477t"),
    # '/', '?' and '#' end urlsplit's netloc early; libpq takes them in a password
    ("failed: postgresql://app:Sl/ash#Pw-4478s@db.example.com/app", "Pw-4478s"),
    ("DATABASE_URL=postgresql://u:Env/Pw-4479r@h/db", "Pw-4479r"),
    ("app:Q?Pw-4480q@db.example.com", "Pw-4480q"),
])
def test_scrub_catches_credentials_in_any_form(text, secret):
    assert secret not in scrub(text)


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "postgresql//app:Malformed-Pw-5521@db.example.com:5432/app",
    "postgress://mingus:Typo/Malformed-Pw-5521@db",
    "mysql://mingus:Typo#Malformed-Pw-5521@db",
])
def test_a_malformed_target_url_never_echoes_its_password(client, runbook, users, url):
    client.force_login(users["lead"])
    response = client.post(reverse("runbook-settings", args=[runbook.pk]),
                           {"sources": "", "target_url": url})
    assert response.status_code == 400
    assert "Malformed-Pw-5521" not in response.content.decode()
    denied = AuditEvent.objects.get(action="denied", after__attempted="target")
    assert "Malformed-Pw-5521" not in json.dumps(denied.after)
    client.force_login(users["auditor"])
    export = client.get(reverse("history-csv", args=[runbook.pk]))
    assert export.status_code == 200 and b"Malformed-Pw-5521" not in export.content
    assert_secret_absent("Malformed-Pw-5521")


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["Sup3r/Pw-5522#99", "Pw-5522?x", "Pw#5522"])
def test_a_saved_target_whose_password_holds_url_delimiters_is_shown_masked(client, runbook, users,
                                                                            password):
    client.force_login(users["lead"])
    url = f"postgresql://mingus:{password}@127.0.0.1:5432/app?sslmode=require"
    response = client.post(reverse("runbook-settings", args=[runbook.pk]),
                           {"sources": "", "target_url": url})
    assert response.status_code == 302
    secret = password.split("Pw")[1]  # the part after any delimiter
    for role in ("member", "auditor"):
        client.force_login(users[role])
        page = client.get(reverse("runbook-settings", args=[runbook.pk])).content.decode()
        assert "postgresql://mingus:***@127.0.0.1:5432/app" in page and secret not in page
    export = client.get(reverse("history-json", args=[runbook.pk]))
    assert export.status_code == 200 and secret.encode() not in export.content
    assert_secret_absent(password)


@pytest.mark.django_db
def test_a_denied_event_is_scrubbed_of_any_credential(runbook, users):
    RunbookSource.objects.create(runbook=runbook, name="main", path="/tmp/none.db")
    from checklist import audit

    event = audit.record("denied", actor=users["member"], runbook=runbook,
                         after={"attempted": "x", "reason": "bad value user:Hidden-66a@host"})
    assert "Hidden-66a" not in event.after["reason"]
