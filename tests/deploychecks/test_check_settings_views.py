"""The check settings page (leads change, everyone with a role reads, audited, webhook kept
encrypted) and the partials the runbook page includes."""
import pytest
from django.urls import include, path

from checklist.models import AuditEvent
from deploychecks import criteria, triggers
from deploychecks.models import RunbookCheckSettings, TriggerFiring
from mingus_deploy.urls import urlpatterns as app_urls

# The lead includes deploychecks.urls under "deploychecks/"; these tests do the same.
urlpatterns = [*app_urls, path("deploychecks/", include("deploychecks.urls"))]
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

TOKEN = "xoxb-Secret-hook-token-5521"
HOOK = f"https://hooks.example.com/services/{TOKEN}"


def post_settings(client, runbook, **overrides):
    data = {"page_load_ms": "1500", "api_ms": "400", "db_query_ms": "80",
            "pool_utilization_pct": "70", "app_uptime_pct": "99.9", "db_uptime_pct": "99.95",
            "uptime_window_hours": "24", "degradation_pct": "40", "error_rate_pct": "2",
            "env_path": "", "env_rules": "{}", "app_spec_path": "", "target_ca_file": "",
            "deployed_url": "https://app.example.com", "health_path": "/healthz", "ca_file": "",
            "http_paths": '["/", "/api/items"]', "monitor_interval_seconds": "60",
            "notify_emails": "ops@example.com", "webhook_url": HOOK, **overrides}
    return client.post(f"/deploychecks/runbooks/{runbook.pk}/settings/", data)


def test_unsaved_settings_read_the_seed_values_and_create_no_row(runbook):
    cs = RunbookCheckSettings.for_runbook(runbook)
    assert (cs.page_load_ms, cs.api_ms, cs.db_query_ms, cs.pool_utilization_pct) == (
        2000, 500, 100, 80)
    assert (cs.app_uptime_pct, cs.db_uptime_pct, cs.degradation_pct, cs.error_rate_pct) == (
        99.9, 99.95, 50, 5)
    assert cs.monitor_interval_seconds == 0
    assert cs.pk is None and not RunbookCheckSettings.objects.exists()


def test_lead_changes_settings_audited_with_the_webhook_redacted(client, runbook, users):
    client.force_login(users["lead"])
    response = post_settings(client, runbook)
    assert response.status_code == 200, response.content
    cs = RunbookCheckSettings.for_runbook(runbook)
    assert cs.api_ms == 400 and cs.http_paths == ["/", "/api/items"]
    assert cs.webhook_url() == HOOK and TOKEN not in cs.webhook_url_encrypted
    assert cs.webhook_url_redacted == "https://hooks.example.com/***"
    event = AuditEvent.objects.get(action="check-settings")
    assert event.actor == users["lead"]
    assert event.before["api_ms"] == 500 and event.after["api_ms"] == 400
    assert event.after["webhook_url"] == "https://hooks.example.com/***"
    assert TOKEN not in str(event.after) and TOKEN not in response.content.decode()
    # An empty webhook field keeps the stored one.
    post_settings(client, runbook, webhook_url="", api_ms="450")
    cs.refresh_from_db()
    assert cs.api_ms == 450 and cs.webhook_url() == HOOK


@pytest.mark.parametrize("role", ["member", "auditor", "nobody"])
def test_only_leads_change_settings(client, runbook, users, role):
    client.force_login(users[role])
    response = post_settings(client, runbook)
    assert response.status_code == 403
    assert RunbookCheckSettings.for_runbook(runbook).api_ms == 500
    assert AuditEvent.objects.filter(action="denied").exists()


def test_readers_see_the_settings_without_the_webhook(client, runbook, users):
    cs = RunbookCheckSettings.for_runbook(runbook)
    cs.set_webhook_url(HOOK)
    cs.save()
    client.force_login(users["auditor"])
    response = client.get(f"/deploychecks/runbooks/{runbook.pk}/settings/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Only a lead can change" in page and TOKEN not in page


def test_bad_input_is_refused_and_changes_nothing(client, runbook, users):
    client.force_login(users["lead"])
    response = post_settings(client, runbook, webhook_url="ftp://x", api_ms="fast")
    assert response.status_code == 400
    assert RunbookCheckSettings.for_runbook(runbook).api_ms == 500
    assert not AuditEvent.objects.filter(action="check-settings").exists()


def test_banner_names_the_trigger_its_evidence_and_the_rollback(client, runbook, users):
    client.force_login(users["member"])
    empty = client.get(f"/deploychecks/runbooks/{runbook.pk}/triggers/")
    assert empty.status_code == 200 and "Rollback trigger" not in empty.content.decode()
    TriggerFiring.objects.create(
        runbook=runbook, trigger="performance-degradation", title="Performance degradation",
        summary="1 of 2 queries slower than the baseline", figures={},
        evidence={"run_id": 9, "kind": "check-performance", "name": "r.json",
                  "sha256": "ab" * 32})
    html = client.get(f"/deploychecks/runbooks/{runbook.pk}/triggers/").content.decode()
    assert "Performance degradation" in html and "check-performance run #9" in html
    assert f"/runbooks/{runbook.pk}/jobs/rollback/run/" in html
    assert "Restore SQLite databases from backup" in html
    assert triggers.banner_context(runbook)["firings"][0].trigger == "performance-degradation"


def test_criteria_partial_says_no_evidence_yet(client, runbook, users):
    client.force_login(users["auditor"])
    html = client.get(f"/deploychecks/runbooks/{runbook.pk}/criteria/").content.decode()
    assert html.count("no evidence yet") == 7
    assert "&lt; 2000 ms (page p95)" in html
    assert len(criteria.criteria_context(runbook)["criteria"]) == 7
    mon = client.get(f"/deploychecks/runbooks/{runbook.pk}/monitoring/")
    assert mon.status_code == 200 and "Monitoring is off" in mon.content.decode()


def test_check_settings_are_saved_only_through_the_audited_action(runbook, users):
    from checklist import actions

    with pytest.raises(actions.Refused) as refused:
        actions.save_check_settings(users["member"], runbook, {"api_ms": 1.0})
    assert refused.value.status == 403
    assert AuditEvent.objects.filter(action="denied", after__attempted="check-settings").exists()
    assert not RunbookCheckSettings.objects.exists()
    cs = actions.save_check_settings(users["lead"], runbook, {"api_ms": 321.0})
    assert RunbookCheckSettings.objects.get().api_ms == 321.0 == cs.api_ms
    event = AuditEvent.objects.get(action="check-settings")
    assert event.runbook_id == runbook.pk and event.before["api_ms"] == 500
    with pytest.raises(ValueError):
        actions.save_check_settings(users["lead"], runbook, {"webhook_url_encrypted": "x"})
