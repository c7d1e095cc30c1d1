"""The engine's steps as jobs, through the app's own API, on a real worker, Redis and PostgreSQL."""
import shutil
import sqlite3
import uuid

import psycopg
import pytest
from django.conf import settings

from checklist import actions
from checklist.models import ItemState, TaskRun
from migration.hashing import file_sha256

from tests.conftest import FIXTURES, assert_secret_absent, ended, wait_for_run
from tests.worker import start_worker

from .factories import complete_phase, gated, states_of

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FIVE = ["mingus.db", "alerts.db", "business_intelligence.db", "cache.db", "performance_metrics.db"]
ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"


@pytest.fixture
def target_db():
    name = f"jobs_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://root@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def configured(runbook, users, tmp_path, target_db):
    sources = {}
    for name in FIVE:
        shutil.copyfile(FIXTURES / name, tmp_path / name)
        sources[name.removesuffix(".db")] = str(tmp_path / name)
    actions.set_sources(users["lead"], runbook, sources)
    actions.set_target(users["lead"], runbook, target_db)
    return runbook


def start(client, runbook, kind):
    response = client.post(f"/api/runbooks/{runbook.pk}/jobs/", {"kind": kind},
                           content_type="application/json")
    assert response.status_code == 202, response.content
    return TaskRun.objects.get(pk=response.json()["id"])


def item(runbook, text):
    return ItemState.objects.get(runbook=runbook, item__text=text)


def assert_evidence_matches_files(run):
    files = [e for e in run.evidence.all() if e.path]
    assert files, f"run #{run.pk} kept no evidence files"
    for e in files:
        assert file_sha256(settings.MEDIA_ROOT / e.path) == e.sha256, e.name


def test_backup_assess_schema_dry_run_run_validate_chain(client, configured, users, worker, target_db):
    rb = configured
    client.force_login(users["member"])
    for kind, earned in [
        ("backup", "Backup manifest created with checksums"),
        ("assess", "Data volume and migration time estimated"),
        ("schema", "UUID extension enabled in PostgreSQL"),
    ]:
        run = wait_for_run(start(client, rb, kind), ended, timeout=300)
        assert run.state == "succeeded", f"{kind}: {run.error}\n{run.log}"
        assert item(rb, earned).checked, kind
        assert item(rb, earned).earned_by == f"{kind} run #{run.pk}"
        assert_evidence_matches_files(run)
    backup = TaskRun.objects.get(runbook=rb, kind="backup")
    assert {"Backup restoration tested", "All 5 SQLite databases backed up and verified"} <= {
        s.item.text for s in ItemState.objects.filter(runbook=rb, checked=True)}
    assert any(e.name.endswith(".json") and "manifest" in e.name for e in backup.evidence.all())

    # The schema needs a lead's approval bound to its sha256, then the phase is signed off.
    from checklist.rules import latest_schema_evidence

    schema_file = latest_schema_evidence(rb)
    assert schema_file is not None and len(schema_file.sha256) == 64
    actions.approve_schema(users["lead"], rb, schema_file, "reviewed")
    assert item(rb, "`unified_schema.sql` reviewed and approved").checked
    first = gated(rb)[0]
    complete_phase(rb, first, users["member"])
    actions.sign_off(users["lead"], rb, first, "pre-deployment done")

    for kind, earned in [
        ("dry-run", "Data mapping verified"),
        ("migrate", "All data transferred successfully"),
        ("validate", "Record counts verified"),
        ("rollback-rehearsal", "Rollback plan tested"),  # the rehearsal, never a destructive rollback
    ]:
        run = wait_for_run(start(client, rb, kind), ended, timeout=600)
        assert run.state == "succeeded", f"{kind}: {run.error}\n{run.log}"
        assert item(rb, earned).checked and item(rb, earned).checked_by == users["member"]
        assert_evidence_matches_files(run)
        # Inside the Celery worker the job loads and checks with as many processes as the
        # command from a shell (a prefork child is daemonic; the engine still starts workers).
        figures = run.evidence.get(kind="figures").figures
        assert "cannot start worker processes" not in run.log, run.log
        if kind == "migrate":
            assert figures["loader_processes"] > 1, figures
        if kind == "validate":
            assert figures["checker_processes"] > 1, figures
    with psycopg.connect(target_db) as conn:  # the rehearsal dropped nothing for good
        assert conn.execute("SELECT count(*) FROM mingus.users").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM _pgmigrate.created").fetchone()[0] > 0

    doc = client.get(f"/api/runbooks/{rb.pk}/").json()
    items = {i["text"]: i for p in doc["phases"] for g in p["groups"] for i in g["items"]}
    runs = items["Record counts verified"]["runs"]
    assert runs[0]["state"] == "succeeded" and runs[0]["started_by"] == "member"
    assert all(len(e["sha256"]) == 64 for e in runs[0]["evidence"] if e["kind"] != "figures")


def test_a_bad_source_path_fails_in_plain_words(client, runbook, users, worker, tmp_path):
    actions.set_sources(users["lead"], runbook, {"mingus": str(tmp_path / "missing.db")})
    client.force_login(users["member"])
    run = wait_for_run(start(client, runbook, "backup"), ended)
    assert run.state == "failed"
    assert "missing.db" in run.error
    assert "Traceback" not in run.error
    assert not item(runbook, "Backup manifest created with checksums").checked


def _big_source(path, rows=400_000):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT, "
               "amount REAL, payload TEXT)")
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                   ((i, f"kind-{i % 17}", f"2025-01-{1 + i % 28:02d} 12:00:00", i * 0.25,
                     "x" * 120) for i in range(1, rows + 1)))
    db.commit()
    db.close()


def test_worker_killed_mid_migration_then_re_run_resumes_and_validates(
        client, runbook, users, tmp_path, target_db):
    _big_source(tmp_path / "big.db")
    actions.set_sources(users["lead"], runbook, {"big": str(tmp_path / "big.db")})
    actions.set_target(users["lead"], runbook, target_db)
    from .factories import sign_off_through

    client.force_login(users["member"])
    first = start_worker()
    try:
        assert wait_for_run(start(client, runbook, "schema"), ended, 300).state == "succeeded"
        from checklist.rules import latest_schema_evidence

        actions.approve_schema(users["lead"], runbook, latest_schema_evidence(runbook), "ok")
        sign_off_through(runbook, 1, users["member"], users["lead"])
        run = start(client, runbook, "migrate")
        wait_for_run(run, lambda r: (r.rows or 0) > 0 or not r.active, timeout=300)
        assert run.state == "running", f"finished before it could be killed: {run.state}"
        first.kill()
    finally:
        first.stop()
    second = start_worker(queue=first.queue, name=first.name)
    try:
        run = wait_for_run(run, ended)
        assert run.state == "lost"
        again = wait_for_run(start(client, runbook, "migrate"), ended, 600)
        assert again.state == "succeeded", again.error + again.log
        check = wait_for_run(start(client, runbook, "validate"), ended, 600)
        assert check.state == "succeeded", check.error + check.log
    finally:
        second.stop()
    with psycopg.connect(target_db) as conn:
        tables = conn.execute("SELECT table_schema FROM information_schema.tables "
                              "WHERE table_name = 'events'").fetchall()
        schema = tables[0][0]
        count, distinct = conn.execute(
            f'SELECT count(*), count(DISTINCT id) FROM "{schema}".events').fetchone()
    assert count == distinct == 400_000


def test_a_new_schema_file_voids_the_approval(client, configured, users, worker, tmp_path):
    from checklist.rules import latest_schema_evidence, schema_approval

    rb = configured
    client.force_login(users["member"])
    assert wait_for_run(start(client, rb, "schema"), ended, 300).state == "succeeded"
    first = latest_schema_evidence(rb)
    actions.approve_schema(users["lead"], rb, first, "ok")
    approved = "`unified_schema.sql` reviewed and approved"
    assert item(rb, approved).checked and schema_approval(rb).sha256 == first.sha256

    db = sqlite3.connect(rb.sources.get(name="cache").path)
    db.execute("CREATE TABLE added_later (id INTEGER PRIMARY KEY, note TEXT)")
    db.commit()
    db.close()
    assert wait_for_run(start(client, rb, "schema"), ended, 300).state == "succeeded"
    second = latest_schema_evidence(rb)
    assert second.sha256 != first.sha256
    assert schema_approval(rb) is None
    assert not item(rb, approved).checked
    # The same file approved again stands.
    actions.approve_schema(users["lead"], rb, second, "ok again")
    assert schema_approval(rb).sha256 == second.sha256


def test_the_target_password_never_reaches_logs_evidence_or_pages(client, runbook, users, worker,
                                                                  tmp_path, target_db):
    secret = "Tg7-target-Pw-9931"
    shutil.copyfile(FIXTURES / "alerts.db", tmp_path / "alerts.db")
    actions.set_sources(users["lead"], runbook, {"alerts": str(tmp_path / "alerts.db")})
    # Trust auth on the local server accepts any password, so the jobs really use this URL.
    actions.set_target(users["lead"], runbook, target_db.replace("root@", f"root:{secret}@"))
    client.force_login(users["member"])
    assert wait_for_run(start(client, runbook, "schema"), ended, 300).state == "succeeded"
    # A wrong port makes the engine report a connection error naming the URL.
    actions.set_target(users["lead"], runbook,
                       f"postgresql://root:{secret}@127.0.0.1:1/nowhere")
    failed = wait_for_run(start(client, runbook, "schema"), ended, 300)
    assert failed.state == "failed" and "127.0.0.1:1" in failed.error
    assert_secret_absent(secret)
    client.force_login(users["lead"])
    for url in (f"/api/runbooks/{runbook.pk}/", f"/runbooks/{runbook.pk}/",
                f"/runbooks/{runbook.pk}/settings/", f"/runbooks/{runbook.pk}/history.json"):
        assert secret not in client.get(url).content.decode(), url


def test_assess_items_are_earned_one_by_one_on_the_real_mingus_files(client, runbook, users,
                                                                      worker, tmp_path):
    sources = {}
    for name in FIVE + ["instance-mingus.db"]:
        shutil.copyfile(FIXTURES / name, tmp_path / name)
        sources[name.removesuffix(".db").replace("-", "_")] = str(tmp_path / name)
    actions.set_sources(users["lead"], runbook, sources)
    client.force_login(users["member"])
    run = wait_for_run(start(client, runbook, "assess"), ended, timeout=300)
    # The files hold rows that reference missing parents: the run reports it and fails, but what
    # it did establish (conflicts resolved, volume, storage) is earned item by item.
    assert run.state in ("succeeded", "failed"), run.log
    for text in ("`assess_databases.py` executed and report reviewed",
                 "Table conflicts identified and resolved",
                 "Data volume and migration time estimated", "Storage requirements calculated"):
        assert item(runbook, text).checked, (text, run.error)
        assert item(runbook, text).earned_run_id == run.pk
