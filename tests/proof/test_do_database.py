"""do-database through pydo against a local server that answers like DigitalOcean's API
(GET /v2/databases/{uuid}, bodies as the API reference documents them), incl. 401, 404, 429."""
import json

import pytest

from checklist import job_actions
from checklist.models import AuditEvent, ItemState
from checks import digitalocean
from deploychecks.models import RunbookProofSettings
from checks.report import CheckInputError
from tests.conftest import assert_secret_absent, ended, wait_for_run

from .conftest import proof_settings
from .do_fake import CLUSTER, TOKEN, cluster

pytestmark = pytest.mark.django_db(transaction=True)


def test_pydo_answers_are_judged_and_errors_named(fake_do):
    do = digitalocean.client(TOKEN, fake_do.url)
    fake_do.throttle = 2  # two 429s, then the answer: pydo retries after Retry-After
    found = digitalocean.database(do, CLUSTER, 15)
    assert found["provisioned"]["ok"] and found["plan"] == {
        "ok": True, "size": "db-s-2vcpu-4gb", "nodes": 1,
        "reason": "Basic plan db-s-2vcpu-4gb, 1 node(s)"}
    assert len(fake_do.requests) == 3 and fake_do.requests[-1][1].startswith("/v2/databases/")
    fake_do.clusters[CLUSTER] = cluster(status="creating", version="13")
    found = digitalocean.database(do, CLUSTER, 15)
    assert not found["provisioned"]["ok"]
    assert found["provisioned"]["reason"] == ("status is creating, not online; version 13 is "
                                              "older than 15")
    with pytest.raises(CheckInputError, match=r"not found \(404\)"):
        digitalocean.database(do, "nope", 15)
    with pytest.raises(CheckInputError, match=r"token was refused \(401\)"):
        digitalocean.database(digitalocean.client("dop_v1_wrong", fake_do.url), CLUSTER, 15)


@pytest.mark.worker
def test_do_database_job_on_a_worker(runbook, users, do_worker, fake_do):
    ps = RunbookProofSettings(runbook=runbook, do_api_endpoint=fake_do.url,
                              do_database_id=CLUSTER)
    ps.set_do_token("dop_v1_wrong-token-00000")
    ps.save()
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "do-database"), ended)
    assert run.state == "failed" and "token was refused (401)" in run.error
    ps.set_do_token(TOKEN)
    ps.save()
    assert ps.do_token_redacted == "dop_…3a" and TOKEN not in ps.do_token_encrypted
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "do-database"), ended)
    assert run.state == "succeeded", run.error + run.log
    for text in ("PostgreSQL database provisioned", "Database plan selected (Starter/Professional)"):
        assert ItemState.objects.get(runbook=runbook, item__text=text).earned_run_id == run.pk
    assert "PostgreSQL 16 online in nyc3" in run.log
    assert_secret_absent(TOKEN)


def test_the_token_is_saved_encrypted_through_the_audited_admin(client, users, runbook):
    client.force_login(users["admin"])
    response = client.post("/admin/deploychecks/runbookproofsettings/add/", {
        "runbook": runbook.pk, "do_api_endpoint": "https://api.digitalocean.com",
        "do_min_pg_version": 15, "do_deploy_timeout_seconds": 1800, "do_min_cert_days": 14,
        "repo_scripts": "[]", "repo_config_files": "[]", "docs_map": "{}", "app_tables": "[]",
        "app_seed_rows": "{}", "test_map": "{}", "do_token": TOKEN,
        "updated_at_0": "2026-12-02", "updated_at_1": "06:00:00"})
    assert response.status_code == 302, response.content[:2000]
    ps = RunbookProofSettings.objects.get(runbook=runbook)
    assert ps.do_token() == TOKEN and ps.do_token_redacted == "dop_…3a"
    event = AuditEvent.objects.filter(action="admin-add").latest("pk")
    assert TOKEN not in json.dumps(event.after) and "do_token_encrypted" not in event.after
