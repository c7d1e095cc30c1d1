"""The proof settings page: a lead saves what the proof jobs read through the audited action; the
DigitalOcean token is write-only (encrypted, shown redacted, never in a page or an audit event);
bad input is a 400 naming the field with nothing saved."""
import json

import pytest
from django.urls import reverse

from checklist.models import AuditEvent
from deploychecks.models import RunbookProofSettings

pytestmark = pytest.mark.django_db

TOKEN = "dop_v1_" + "c0ffee42" * 8


def form_data(**changes):
    data = {"do_api_endpoint": "https://api.digitalocean.com", "do_app_id": "app-1",
            "do_database_id": "db-1", "do_min_pg_version": "15",
            "do_deploy_timeout_seconds": "1800", "do_min_cert_days": "14",
            "repo_path": "/srv/mingus", "repo_commit": "", "repo_scripts": '["init_db.py"]',
            "repo_config_files": "[]", "docs_map": "{}", "app_tables": '["users"]',
            "app_seed_rows": '{"subscription_plans": 3}', "app_admin_sql": "",
            "app_db_user": "mingus", "junit_path": "", "test_map": "{}", "window_start": "",
            "window_end": "", "announce_note": "", "do_token": TOKEN}
    data.update(changes)
    return data


def test_a_lead_saves_the_settings_and_the_token_stays_write_only(client, runbook, users):
    url = reverse("proof-settings", args=[runbook.pk])
    client.force_login(users["lead"])
    response = client.post(url, form_data())
    assert response.status_code == 200, response.content[:2000]
    ps = RunbookProofSettings.objects.get(runbook=runbook)
    assert ps.do_token() == TOKEN and ps.do_app_id == "app-1"
    assert ps.repo_scripts == ["init_db.py"] and ps.app_seed_rows == {"subscription_plans": 3}
    assert TOKEN not in response.content.decode() and ps.do_token_redacted in \
        response.content.decode()
    event = AuditEvent.objects.filter(action="proof-settings").latest("pk")
    assert event.actor == users["lead"] and event.after["do_token"] == ps.do_token_redacted
    assert TOKEN not in json.dumps(event.after) + json.dumps(event.before)

    client.post(url, form_data(do_token="", do_app_id="app-2"))  # empty keeps the token
    ps.refresh_from_db()
    assert ps.do_token() == TOKEN and ps.do_app_id == "app-2"
    client.post(url, form_data(do_token="", clear_do_token="on"))
    ps.refresh_from_db()
    assert ps.do_token() == "" and ps.do_token_redacted == ""

    client.force_login(users["auditor"])
    page = client.get(url).content.decode()
    assert "Only a lead can change these settings." in page and "app-1" in page


@pytest.mark.parametrize("field, value, message", [
    ("do_api_endpoint", "http://api.digitalocean.com", "https:// URL without credentials"),
    ("do_api_endpoint", "https://user:pw@api.example.com", "https:// URL without credentials"),
    ("repo_scripts", '{"a": 1}', "Scripts is a JSON list of texts"),
    ("app_seed_rows", '{"plans": "three"}', "fewest rows, a whole number"),
    ("test_map", '{"Item": "test_a"}', "The tests of &#x27;Item&#x27; is a JSON list"),
    ("window_end", "2026-12-01T10:00", "ends after it starts"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_saved(client, runbook, users,
                                                                     field, value, message):
    client.force_login(users["lead"])
    data = form_data(window_start="2026-12-01T12:00", **{field: value})
    response = client.post(reverse("proof-settings", args=[runbook.pk]), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not RunbookProofSettings.objects.filter(runbook=runbook).exists()
    assert TOKEN not in response.content.decode()
