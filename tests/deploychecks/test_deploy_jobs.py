"""The deployment checks as jobs: evidence, earned ticks, the performance baseline, rollback
triggers, success criteria and monitoring, against the TLS PostgreSQL cluster and the gunicorn
test site. Most handlers run in this process through the real `run_job` task body; one test per
kind of proof goes through a real worker process."""
import json
import os
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from checklist import actions, job_actions, jobs
from checklist.models import AuditEvent, Evidence, ItemState, JobBinding, TaskRun
from checklist.job_context import JobContext, JobResult
from checklist.runner import finish
from checklist.tasks import run_job
from migration.hashing import file_sha256
from deploychecks import criteria, monitor, triggers
from deploychecks.models import (MonitorSample, Notification, PerformanceBaseline,
                                 RunbookCheckSettings, TriggerFiring)
from tests.checklist.factories import sign_off_through
from tests.conftest import assert_secret_absent, ended, wait_for_run

pytestmark = pytest.mark.django_db(transaction=True)

FAST_PERF = {"iterations": 5, "pool_requests": 40, "concurrency": 4, "pool_size": 10,
             "default_queries": False}
ORDERS_SQL = "SELECT * FROM orders WHERE user_id = 7"
USERS_SQL = "SELECT * FROM users WHERE id = 7"
SHOP = """
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
                     amount numeric(10, 2));
CREATE INDEX orders_user_id_idx ON orders (user_id);
INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 2000) g;
INSERT INTO orders (user_id, amount) SELECT (g % 2000) + 1, g % 100
  FROM generate_series(1, 300000) g;
ANALYZE;
"""


# --- helpers shared with the other deploychecks job tests ---------------------------------------

@contextmanager
def tls_database(tls_postgres, schema_sql=""):
    """A fresh database on the TLS cluster (its URL, with the cluster's password)."""
    name = f"chk_dj_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(tls_postgres.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = tls_postgres.url(dbname=name)
    try:
        if schema_sql:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(schema_sql)
        yield url
    finally:
        with psycopg.connect(tls_postgres.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def configure(runbook, lead, target=None, **fields):
    if target:
        actions.set_target(lead, runbook, target)
    cs = RunbookCheckSettings.for_runbook(runbook)
    for key, value in fields.items():
        setattr(cs, key, value)
    cs.save()
    runbook.refresh_from_db()
    return cs


def run_here(user, runbook, kind, params=None):
    """Run a job's real task body in this process (no worker): TaskRun, handler, evidence,
    earned ticks, and the after-run hook once committed."""
    run = TaskRun.objects.create(runbook=runbook, kind=kind, started_by=user,
                                 params=params or {})
    run.items.set(jobs.items_for(runbook, kind))
    run_job(run.pk)
    run.refresh_from_db()
    return run


def fake_validate(runbook, user, ok, **figures):
    """A validate run's evidence as the lead's engine writes it (report + figures)."""
    run = TaskRun.objects.create(runbook=runbook, kind="validate", started_by=user,
                                 state=TaskRun.RUNNING)
    ctx = JobContext(run, {})
    report = {"name": "validate", "ok": ok, "figures": figures}
    finish(run, ctx, JobResult(ok=ok, summary="validated", report=report, figures=figures),
           TaskRun.SUCCEEDED if ok else TaskRun.FAILED)
    run.refresh_from_db()
    return run


def open_deployment(runbook, users):
    sign_off_through(runbook, 2, users["member"], users["lead"])


def report_of(run):
    ev = run.evidence.get(kind="report")
    assert file_sha256(settings.MEDIA_ROOT / ev.path) == ev.sha256
    return json.loads((settings.MEDIA_ROOT / ev.path).read_text()), ev


def ticked(runbook, text):
    return ItemState.objects.get(runbook=runbook, item__text=text)


# --- bindings ------------------------------------------------------------------------------------

def test_every_bound_item_exists_in_the_seed_and_is_bound(template):
    data = json.loads((jobs.BINDINGS_DIR / "mingus-checks.json").read_text())
    for kind, keys in data["bindings"].items():
        assert kind in jobs.REGISTRY, kind
        for entry in keys:
            entry = {"key": entry} if isinstance(entry, str) else entry
            bound = JobBinding.objects.filter(item__group__phase__template=template, kind=kind,
                                              item__key=entry["key"])
            assert bound.count() == 1, (kind, entry)
    # Text used twice in the seed binds only in the group the entry names.
    assert [b.item.group.title for b in JobBinding.objects.filter(
        item__text="Authentication working correctly", kind__startswith="check-")] == [
        "Database Connectivity"]


# --- through a real worker ----------------------------------------------------------------------

@pytest.mark.worker
def test_connectivity_job_on_a_worker_earns_its_items_and_keeps_no_password(
        runbook, users, worker, tls_postgres):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    configure(runbook, users["lead"], target=tls_postgres.url(),
              target_ca_file=str(tls_postgres.ca_file))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "check-connectivity"), ended)
    assert run.state == "succeeded", run.error + run.log
    report, ev = report_of(run)
    assert report["ok"] and report["figures"]["tls"] is True
    assert report["figures"]["sslmode"] == "verify-full"
    figures = run.evidence.get(kind="figures").figures
    assert figures["tls"] is True and figures["pool_connections_used"] == 20
    for text in ("PostgreSQL connection tested from local environment", "SSL connection verified",
                 "Connection pooling tested"):
        state = ticked(runbook, text)
        assert state.checked and state.earned_by == f"check-connectivity run #{run.pk}"
    # Bound in the Deployment phase too, which is still locked: not ticked there yet.
    assert not ticked(runbook, "SSL connections established").checked
    assert not ticked(runbook, "Connection pooling functioning").checked
    assert_secret_absent(tls_postgres.password)


@pytest.mark.worker
def test_connectivity_job_with_a_wrong_password_fails_and_ticks_nothing(
        runbook, users, worker, tls_postgres):
    sign_off_through(runbook, 1, users["member"], users["lead"])
    wrong = "Wr0ng-pa55word-zz91"
    configure(runbook, users["lead"], target=tls_postgres.url(password=wrong),
              target_ca_file=str(tls_postgres.ca_file))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "check-connectivity"), ended)
    assert run.state == "failed"
    assert "connect" in run.error
    report, _ = report_of(run)
    assert not report["ok"] and "password authentication failed" in json.dumps(report)
    assert not ticked(runbook, "SSL connection verified").checked
    assert AuditEvent.objects.filter(action="job-failed", object_id=str(run.pk)).exists()
    assert_secret_absent(wrong)


# --- in-process runs of the other kinds ---------------------------------------------------------

def test_env_and_app_spec_jobs_pass_and_fail_on_files(runbook, users, tmp_path):
    good = tmp_path / "prod.env"
    secret = "k" * 12 + "Zq8-Lm3pX9wT5vR2nB7cY4dF"
    good.write_text("DATABASE_URL=postgres://app:pw-in-url-4431@db.example.com:25060/app"
                    "?sslmode=require\nDB_POOL_SIZE=20\nDB_SSL_MODE=require\n"
                    f"SECRET_KEY={secret}\nFLASK_ENV=production\n")
    configure(runbook, users["lead"], env_path=str(good),
              app_spec_path=str(settings.BASE_DIR / "app-spec.yaml"))
    run = run_here(users["member"], runbook, "check-env")
    assert run.state == "succeeded", run.error + run.log
    assert ticked(runbook, "`DB_POOL_SIZE` set to 20 for production").checked
    assert ticked(runbook, "`FLASK_ENV` set to 'production'").earned_by == \
        f"check-env run #{run.pk}"
    spec = run_here(users["member"], runbook, "check-app-spec")
    assert spec.state == "succeeded", spec.error + spec.log
    assert ticked(runbook, "Health checks configured").checked

    bad = tmp_path / "bad.env"
    bad.write_text("DATABASE_URL=sqlite:///x.db\nDB_POOL_SIZE=5\nFLASK_ENV=development\n")
    configure(runbook, users["lead"], env_path=str(bad))
    failed = run_here(users["member"], runbook, "check-env")
    assert failed.state == "failed"
    assert {"DATABASE_URL", "DB_POOL_SIZE", "FLASK_ENV"} <= set(
        failed.evidence.get(kind="figures").figures["criteria_failed"])
    # Per-runbook rule overrides reach the check: a pool of 5 is now what is asked for.
    configure(runbook, users["lead"], env_rules={"equals": {"DB_POOL_SIZE": "5"}})
    again = run_here(users["member"], runbook, "check-env")
    assert "DB_POOL_SIZE" not in again.evidence.get(kind="figures").figures["criteria_failed"]
    assert_secret_absent(secret)
    assert_secret_absent("pw-in-url-4431")


def test_a_missing_input_fails_the_job_with_a_plain_reason(runbook, users):
    run = run_here(users["member"], runbook, "check-app-spec")
    assert run.state == "failed"
    assert run.error == "app-spec: option 'path' is required"


def test_performance_baseline_then_degradation_fires_the_trigger_once_and_clears(
        runbook, users, tls_postgres):
    open_deployment(runbook, users)
    with tls_database(tls_postgres, SHOP) as url:
        # The dropped index turns ~0.2 ms into a sequential scan of 300k rows (tens of ms, far
        # above 1000 %); sub-millisecond lookups on a loaded 2-core machine wander by several
        # hundred percent, so the threshold sits above that noise and below the injected change.
        configure(runbook, users["lead"], target=url, target_ca_file=str(tls_postgres.ca_file),
                  notify_emails="ops@example.com", performance_queries=[ORDERS_SQL, USERS_SQL],
                  degradation_pct=1000)
        params = FAST_PERF
        first = run_here(users["member"], runbook, "check-performance", params)
        assert first.state == "succeeded", first.error + first.log
        baseline = PerformanceBaseline.objects.get(runbook=runbook)
        _, first_ev = report_of(first)
        assert baseline.run == first and baseline.evidence == first_ev
        assert {q["sql"] for q in baseline.report["figures"]["queries"].values()} == {
            ORDERS_SQL, USERS_SQL}
        assert TriggerFiring.objects.count() == 0

        with psycopg.connect(url, autocommit=True) as conn:  # the injected degradation
            conn.execute("DROP INDEX orders_user_id_idx")
        second = run_here(users["member"], runbook, "check-performance", params)
        report, second_ev = report_of(second)
        comparison = report["baseline_comparison"]
        assert comparison["baseline_run_id"] == first.pk
        assert comparison["baseline_sha256"] == first_ev.sha256
        degraded = {d["sql"]: d for d in comparison["degraded"]}
        assert ORDERS_SQL in degraded and USERS_SQL not in degraded
        assert degraded[ORDERS_SQL]["change_pct"] > 1000
        figures = second.evidence.get(kind="figures").figures
        assert figures["degraded_queries"] == 1 and figures["baseline_run_id"] == first.pk

        firing = TriggerFiring.objects.get(runbook=runbook, trigger="performance-degradation")
        assert firing.cleared_at is None
        assert firing.evidence == {"run_id": second.pk, "kind": "check-performance",
                                   "name": second_ev.name, "sha256": second_ev.sha256}
        assert firing.figures["degraded"][0]["sql"] == ORDERS_SQL
        assert firing.figures["degraded"][0]["baseline_ms"] < firing.figures["degraded"][0][
            "current_ms"]
        assert firing.figures["baseline_run_id"] == first.pk
        assert AuditEvent.objects.filter(action="trigger-fired", object_id=str(firing.pk)).exists()
        assert Notification.objects.filter(event="trigger-fired").count() == 1

        # Evaluated again (the monitoring beat does): still one firing, no second notification.
        triggers.evaluate(runbook)
        monitor.run_due()
        assert TriggerFiring.objects.filter(trigger="performance-degradation").count() == 1
        assert Notification.objects.filter(event="trigger-fired").count() == 1
        banner = triggers.banner_context(runbook)
        assert [f.trigger for f in banner["firings"]] == ["performance-degradation"]
        assert banner["rollback_state"].item.text == "Restore SQLite databases from backup"
        # Never a rollback by itself.
        assert not TaskRun.objects.filter(kind="rollback").exists()

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE INDEX orders_user_id_idx ON orders (user_id)")
        third = run_here(users["member"], runbook, "check-performance", params)
        assert third.state == "succeeded"
        firing.refresh_from_db()
        assert firing.cleared_at is not None
        assert AuditEvent.objects.filter(action="trigger-cleared").exists()
    assert_secret_absent(tls_postgres.password)


def test_triggers_wait_for_the_deployment_phase(runbook, users, tls_postgres):
    sign_off_through(runbook, 1, users["member"], users["lead"])  # Migration open, not Deployment
    fake_validate(runbook, users["member"], ok=False, mismatches=4, missing_rows=0,
                  rows_checked=100)
    assert triggers.evaluate(runbook) == []
    assert not TriggerFiring.objects.exists()


def test_validation_mismatch_fires_data_corruption_and_fails_zero_data_loss(runbook, users):
    open_deployment(runbook, users)
    bad = fake_validate(runbook, users["member"], ok=False, mismatches=3, missing_rows=2,
                        rows_checked=5000)
    firing = TriggerFiring.objects.get(trigger="data-corruption")
    assert firing.figures == {"mismatches": 3, "missing_rows": 2, "rejected": None,
                              "rows_checked": 5000}
    assert firing.evidence["run_id"] == bad.pk and len(firing.evidence["sha256"]) == 64
    zero = next(r for r in criteria.evaluate(runbook) if r.key == "zero_data_loss")
    assert zero.ok is False and zero.evidence["run_id"] == bad.pk

    good = fake_validate(runbook, users["member"], ok=True, mismatches=0, missing_rows=0,
                         rows_checked=5000)
    firing.refresh_from_db()
    assert firing.cleared_at is not None
    zero = next(r for r in criteria.evaluate(runbook) if r.key == "zero_data_loss")
    assert zero.ok is True and zero.evidence["run_id"] == good.pk


def test_rejected_rows_are_loss_for_the_criterion_and_the_trigger(runbook, users):
    open_deployment(runbook, users)
    lossy = fake_validate(runbook, users["member"], ok=True, mismatches=0, missing_rows=0,
                          rejected=1, rows_checked=12)
    zero = next(r for r in criteria.evaluate(runbook) if r.key == "zero_data_loss")
    assert zero.ok is False and zero.figure["rejected"] == 1
    firing = TriggerFiring.objects.get(trigger="data-corruption")
    assert firing.figures["rejected"] == 1 and "1 rejected" in firing.summary
    assert firing.evidence["run_id"] == lossy.pk

    fake_validate(runbook, users["member"], ok=True, mismatches=0, missing_rows=0, rejected=0,
                  rows_checked=12)
    zero = next(r for r in criteria.evaluate(runbook) if r.key == "zero_data_loss")
    assert zero.ok is True
    firing.refresh_from_db()
    assert firing.cleared_at is not None


def test_http_findings_fire_security_and_error_rate_triggers(runbook, users, site):
    open_deployment(runbook, users)
    configure(runbook, users["lead"], deployed_url=site.url + "bare/", ca_file=str(site.ca_file),
              http_paths=["/error", "/"], http_url=site.http_url)
    run = run_here(users["member"], runbook, "check-http",
                   {"requests": 20, "concurrency": 4, "time_cap": 20})
    assert run.state == "failed"
    security = TriggerFiring.objects.get(trigger="security")
    assert {f["name"] for f in security.figures["failed"]} == {"hsts", "x_content_type_options"}
    assert security.evidence["run_id"] == run.pk
    rate = TriggerFiring.objects.get(trigger="error-rate")
    assert rate.figures["error_rate_pct"] == 50.0 and rate.figures["threshold_pct"] == 5.0
    assert not ticked(runbook, "Security headers present").checked


def test_healthy_site_passes_http_and_earns_deployment_items(runbook, users, site):
    open_deployment(runbook, users)
    configure(runbook, users["lead"], deployed_url=site.url, ca_file=str(site.ca_file),
              http_paths=["/", "/api/items"], http_url=site.http_url)
    run = run_here(users["member"], runbook, "check-http", {"requests": 20, "concurrency": 4})
    assert run.state == "succeeded", run.error + run.log
    for text in ("SSL/TLS properly configured", "Security headers present",
                 "Application health checks passed", "Response times acceptable"):
        assert ticked(runbook, text).earned_by == f"check-http run #{run.pk}"
    assert not TriggerFiring.objects.exists()


def test_success_criteria_tick_only_what_the_evidence_passes(runbook, users, site):
    open_deployment(runbook, users)
    configure(runbook, users["lead"], deployed_url=site.url, ca_file=str(site.ca_file),
              http_paths=["/", "/api/slow"], monitor_interval_seconds=60)
    # No evidence at all: nothing passes, nothing is ticked.
    empty = run_here(users["lead"], runbook, "success-criteria")
    assert empty.state == "failed"
    assert empty.evidence.get(kind="figures").figures["no_evidence"] == 7

    http_run = run_here(users["member"], runbook, "check-http", {"requests": 12,
                                                                 "concurrency": 4})
    fake_validate(runbook, users["member"], ok=True, mismatches=0, missing_rows=0,
                  rows_checked=42)
    monitor.sample(runbook)  # a health sample against the test site: up
    run = run_here(users["lead"], runbook, "success-criteria")
    report, ev = report_of(run)
    by_key = {c["key"]: c for c in report["criteria"]}
    assert by_key["page_load"]["ok"] is True
    assert by_key["page_load"]["evidence"]["run_id"] == http_run.pk
    assert len(by_key["page_load"]["evidence"]["sha256"]) == 64
    assert by_key["api_response"]["ok"] is False and by_key["api_response"]["figure"] >= 500
    assert by_key["app_uptime"]["ok"] is True and by_key["app_uptime"]["figure"] == 100.0
    assert by_key["zero_data_loss"]["ok"] is True
    assert by_key["db_query"]["ok"] is None  # no performance run: no evidence yet
    assert by_key["db_uptime"]["ok"] is None
    assert sorted(report["earns"]) == ["Application uptime > 99.9%",
                                        "Page load times < 2 seconds",
                                        "Zero data loss during migration"]
    page = ticked(runbook, "Page load times < 2 seconds")
    assert page.checked and page.checked_by == users["lead"]
    assert page.earned_by == f"success-criteria run #{run.pk}"
    assert not ticked(runbook, "API response times < 500ms").checked
    assert not ticked(runbook, "Database query times < 100ms").checked

    # Items are judged one by one: newer evidence that fails one criterion withdraws only the
    # tick that criterion earned.
    fake_validate(runbook, users["member"], ok=False, mismatches=0, missing_rows=3,
                  rows_checked=42)
    again = run_here(users["lead"], runbook, "success-criteria")
    assert not ticked(runbook, "Zero data loss during migration").checked
    assert ticked(runbook, "Page load times < 2 seconds").checked
    withdrawn = AuditEvent.objects.get(action="tick-withdrawn",
                                       item__text="Zero data loss during migration")
    assert f"success-criteria run #{again.pk} failed" in withdrawn.after["reason"]


def test_monitoring_samples_health_and_database_and_computes_uptime(runbook, users, site,
                                                                    tls_postgres):
    configure(runbook, users["lead"], target=tls_postgres.url(),
              target_ca_file=str(tls_postgres.ca_file), deployed_url=site.url,
              ca_file=str(site.ca_file), monitor_interval_seconds=300)
    assert monitor.run_due() == 1
    assert monitor.run_due() == 0  # not due again before its interval
    kinds = {s.kind: s for s in MonitorSample.objects.filter(runbook=runbook)}
    assert kinds["health"].ok and kinds["health"].figures["status"] == 200
    assert kinds["database"].ok and kinds["database"].latency_ms is not None
    assert kinds["pool"].figures["max_connections"] == 40

    # The site's health endpoint breaks and the database refuses the password.
    cs = configure(runbook, users["lead"], target=tls_postgres.url(password="bad-pw-x1"),
                   health_path="/healthz-broken")
    monitor.sample(runbook, cs)
    health = monitor.uptime(runbook, "health")
    database = monitor.uptime(runbook, "database")
    assert health == {**health, "pct": 50.0, "samples": 2, "failed": 1}
    assert database["pct"] == 50.0
    failed_db = MonitorSample.objects.filter(kind="database", ok=False).get()
    assert "password authentication failed" in failed_db.detail
    app_up = next(r for r in criteria.evaluate(runbook) if r.key == "app_uptime")
    assert app_up.ok is False and app_up.figure == 50.0
    assert_secret_absent(tls_postgres.password)
    assert_secret_absent("bad-pw-x1")
