"""app-database: read-only SQL on the app's own database (the TLS cluster) earns the tables,
default data, pg_stat_statements and the app's TLS sessions and writes, item by item."""
import psycopg
import pytest

from checklist import job_actions
from checklist.models import ItemState
from tests.conftest import ended, wait_for_run
from tests.deploychecks.conftest import *  # noqa: F401,F403  (pki, tls_postgres)
from tests.deploychecks.test_deploy_jobs import configure, tls_database

from .conftest import open_through, proof_settings

pytestmark = pytest.mark.django_db(transaction=True)

APP = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE subscription_plans (id bigserial PRIMARY KEY, name text NOT NULL);
INSERT INTO subscription_plans (name) VALUES ('free'), ('pro');
CREATE ROLE mingus_app LOGIN PASSWORD 'app-pw-4471';
GRANT ALL ON ALL TABLES IN SCHEMA public TO mingus_app;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO mingus_app;
"""


def as_app(url, sslmode):
    user, _, rest = url.removeprefix("postgres://").partition("@")
    return f"postgres://mingus_app:app-pw-4471@{rest}?sslmode={sslmode}"


def state(runbook, text):
    return ItemState.objects.get(runbook=runbook, item__text=text)


@pytest.mark.worker
def test_app_database_earns_what_the_database_shows_on_a_worker(runbook, users, worker,
                                                                tls_postgres):
    open_through(runbook, users, 2)  # Deployment open (Application Testing is signed off)
    with tls_database(tls_postgres, APP) as url:
        configure(runbook, users["lead"], target=url, target_ca_file=str(tls_postgres.ca_file))
        proof_settings(runbook, app_tables=["users", "subscription_plans", "health_checkins"],
                       app_seed_rows={"subscription_plans": 3}, app_db_user="mingus_app")
        run = wait_for_run(job_actions.start_job(users["member"], runbook, "app-database"), ended)
        assert run.state == "failed", run.log
        assert "missing: health_checkins" in run.log
        assert "subscription_plans has 2 rows (fewer than 3)" in run.log
        assert "no session of mingus_app is connected" in run.log
        assert not state(runbook, "Application connects to PostgreSQL successfully").checked
        # The deployed app: a TLS session of its role that writes and reads.
        with psycopg.connect(as_app(url, "require"), autocommit=True) as app:
            app.execute("INSERT INTO users (email) VALUES ('a@example.com')")
            app.execute("SELECT * FROM users WHERE id = 1").fetchall()
            run = wait_for_run(job_actions.start_job(users["member"], runbook, "app-database"), ended)
        assert state(runbook, "Application connects to PostgreSQL successfully"
                     ).earned_run_id == run.pk, run.log
        assert state(runbook, "All database operations working").checked
        assert "all TLS" in run.log
        # Post-Deployment is still locked: judged from pg_stat_statements, not yet ticked.
        assert "ok   Query performance tracking enabled: version" in run.log
        # The app's sessions without TLS: the connection item is withdrawn.
        with psycopg.connect(as_app(url, "disable"), autocommit=True):
            run = wait_for_run(job_actions.start_job(users["member"], runbook, "app-database"), ended)
        assert "without TLS" in run.log
        assert not state(runbook, "Application connects to PostgreSQL successfully").checked


@pytest.mark.worker
def test_app_database_refuses_an_unreachable_target(runbook, users, worker, tls_postgres):
    open_through(runbook, users, 2)
    configure(runbook, users["lead"], target=tls_postgres.url(password="Wr0ng-pw-77x"),
              target_ca_file=str(tls_postgres.ca_file))
    proof_settings(runbook, app_tables=["users"])
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "app-database"), ended)
    assert run.state == "failed" and "password authentication failed" in run.error
    assert "Wr0ng-pw-77x" not in run.error + run.log
