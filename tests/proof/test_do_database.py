"""do-database through pydo against a local server that answers like DigitalOcean's API
(GET /v2/databases/{uuid}, bodies as the API reference documents them), incl. 401, 404, 429."""
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from checklist import job_actions
from checklist.models import AuditEvent, ItemState
from checks import digitalocean
from deploychecks.models import RunbookProofSettings
from checks.report import CheckInputError
from tests.conftest import assert_secret_absent, ended, wait_for_run
from tests.deploychecks.conftest import pki  # noqa: F401  (a CA and a 127.0.0.1 certificate)
from tests.worker import start_worker

from .conftest import proof_settings

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "dop_v1_" + "7f3a" * 16
CLUSTER = "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30"


def cluster(**changes):
    body = {"id": CLUSTER, "name": "mingus-db", "engine": "pg", "version": "16",
            "num_nodes": 1, "size": "db-s-2vcpu-4gb", "region": "nyc3", "status": "online",
            "created_at": "2026-11-20T10:00:00Z", "storage_size_mib": 61440,
            "maintenance_window": {"day": "tuesday", "hour": "01:00:00", "pending": False},
            "connection": {"protocol": "postgresql", "host": "mingus-db.db.ondigitalocean.com",
                           "port": 25060, "user": "doadmin", "database": "defaultdb",
                           "ssl": True}}
    body.update(changes)
    return {"database": body}


class FakeDO:
    """HTTPS, as pydo's bearer-token policy refuses to send a token over plain HTTP."""

    def __init__(self, cert):
        self.clusters, self.requests, self.throttle = {CLUSTER: cluster()}, [], 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.answer(401, {"id": "Unauthorized",
                                             "message": "Unable to authenticate you"})
                if fake.throttle:
                    fake.throttle -= 1
                    return self.answer(429, {"id": "too_many_requests",
                                             "message": "API Rate limit exceeded."},
                                       {"Retry-After": "0", "ratelimit-remaining": "0"})
                key = self.path.split("?")[0].removeprefix("/v2/databases/")
                if key not in fake.clusters:
                    return self.answer(404, {"id": "not_found", "message": "The resource you "
                                             "were accessing could not be found."})
                return self.answer(200, fake.clusters[key])

            def answer(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert_file, cert.key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake_do(pki, monkeypatch):
    # requests (under pydo) trusts the test CA through the variable it always reads.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_file))
    fake = FakeDO(pki.server)
    yield fake
    fake.server.shutdown()


@pytest.fixture
def do_worker(transactional_db, pki):
    w = start_worker(extra_env={"REQUESTS_CA_BUNDLE": str(pki.ca_file)})
    yield w
    w.stop()


def test_pydo_answers_are_judged_and_errors_named(fake_do):
    do = digitalocean.client(TOKEN, fake_do.url)
    fake_do.throttle = 2  # two 429s, then the answer: pydo retries after Retry-After
    found = digitalocean.database(do, CLUSTER, 15)
    assert found["provisioned"]["ok"] and found["plan"] == {
        "ok": True, "size": "db-s-2vcpu-4gb", "nodes": 1,
        "reason": "Basic plan db-s-2vcpu-4gb, 1 node(s)"}
    assert len(fake_do.requests) == 3
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
