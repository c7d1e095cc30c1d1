import pytest
from django.test import override_settings

from deploychecks.tasks import worker_heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_broker_and_worker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    data = response.json()
    assert data["checks"]["database"]["ok"] and data["checks"]["broker"]["ok"]
    assert not data["checks"]["worker"]["ok"]
    assert client.get("/healthz?worker=1").status_code == 503
    worker_heartbeat()
    assert client.get("/healthz?worker=1").json()["checks"]["worker"]["ok"]


@override_settings(CELERY_BROKER_URL="redis://:hunter2-secret@127.0.0.1:1/0")
def test_healthz_says_503_when_the_broker_is_down_without_leaking_its_password(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert not response.json()["checks"]["broker"]["ok"]
    assert b"hunter2-secret" not in response.content
