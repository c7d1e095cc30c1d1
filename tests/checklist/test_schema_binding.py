"""Issue 10, part 3: an approval binds the run. The migrate and dry-run jobs apply only the
unified_schema.sql a lead approved (by sha256); new rows in a live source do not void it."""
import json
import sqlite3
import uuid

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from checklist import actions, jobs
from migration.hashing import file_sha256
from checklist.models import TaskRun
from checklist.rules import latest_schema_evidence
from migration import steps
from tests.conftest import ended, wait_for_run

from .factories import sign_off_through

pytestmark = [pytest.mark.django_db(transaction=True)]
ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"
UUIDS = [str(uuid.UUID(int=n)) for n in range(1, 4)]


@pytest.fixture
def target_db():
    name = f"bind_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://root@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_source(path):
    with sqlite3.connect(path) as db:
        # Every token is a UUID, so the schema step types the column uuid.
        db.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, token TEXT NOT NULL, note TEXT)")
        db.executemany("INSERT INTO sessions (token, note) VALUES (?, ?)",
                       [(u, f"n{i}") for i, u in enumerate(UUIDS)])
    return path


def start(client, runbook, kind):
    return client.post(f"/api/runbooks/{runbook.pk}/jobs/", {"kind": kind},
                       content_type="application/json")


def started(client, runbook, kind, timeout=300):
    response = start(client, runbook, kind)
    assert response.status_code == 202, response.content
    return wait_for_run(TaskRun.objects.get(pk=response.json()["id"]), ended, timeout)


@pytest.fixture
def bound(runbook, users, tmp_path, target_db):
    source = make_source(tmp_path / "app.db")
    actions.set_sources(users["lead"], runbook, {"app": str(source)})
    actions.set_target(users["lead"], runbook, target_db)
    return runbook, source, target_db


@pytest.mark.worker
def test_migrate_and_dry_run_need_a_standing_approval_of_the_very_file(client, bound, users,
                                                                        worker):
    runbook, _, _ = bound
    client.force_login(users["member"])
    sign_off_through(runbook, 1, users["member"], users["lead"])  # Migration opens
    response = start(client, runbook, "migrate")
    assert response.status_code == 409 and "No unified_schema.sql yet" in response.json()["error"]

    assert started(client, runbook, "schema").state == "succeeded"
    for kind in ("migrate", "dry-run"):
        response = start(client, runbook, kind)
        assert response.status_code == 409, kind
        assert "is not approved" in response.json()["error"]

    evidence = latest_schema_evidence(runbook)
    actions.approve_schema(users["lead"], runbook, evidence, "reviewed")
    # Editing the approved file on disk is not what the lead approved.
    path = jobs.schema_file(runbook)
    original = path.read_text()
    path.write_text(original + "\nDROP TABLE IF EXISTS app.sessions;\n")
    response = start(client, runbook, "migrate")
    assert response.status_code == 409
    assert "is not the file lead approved" in response.json()["error"]
    assert not TaskRun.objects.filter(runbook=runbook, kind="migrate").exists()

    path.write_text(original)
    run = started(client, runbook, "dry-run")
    assert run.state == "succeeded", run.error + run.log
    report = json.loads((settings.MEDIA_ROOT / run.evidence.get(kind="report").path).read_text())
    assert report["schema_approval"]["sha256"] == evidence.sha256
    assert report["schema_approval"]["lead"] == "lead"
    assert report["schema_sha256"] == evidence.sha256


@pytest.mark.worker
def test_a_row_written_after_the_schema_step_loads_under_the_approved_schema(
        client, bound, users, worker):
    runbook, source, target = bound
    client.force_login(users["member"])
    assert started(client, runbook, "schema").state == "succeeded"
    evidence = latest_schema_evidence(runbook)
    actions.approve_schema(users["lead"], runbook, evidence, "reviewed")
    sign_off_through(runbook, 1, users["member"], users["lead"])

    with sqlite3.connect(source) as db:  # the live source keeps being written
        db.execute("INSERT INTO sessions (token, note) VALUES (?, 'new')", (str(uuid.uuid4()),))
        db.execute("INSERT INTO sessions (token, note) VALUES ('not-a-uuid', 'unforeseen')")

    run = started(client, runbook, "migrate", timeout=600)
    assert file_sha256(jobs.schema_file(runbook)) == evidence.sha256  # not regenerated
    report = json.loads((settings.MEDIA_ROOT / run.evidence.get(kind="report").path).read_text())
    assert report["schema_sha256"] == evidence.sha256
    assert report["schema_approval"]["id"] == evidence_approval_id(runbook)
    table = report["tables"][0]
    # The new row is loaded; the row the census did not foresee is an accounted reject.
    assert (table["read"], table["loaded"], table["rejected"]) == (5, 4, 1)
    assert run.state == "failed" and "1 rows rejected" in run.error
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM app.sessions").fetchone()[0] == 4
        assert conn.execute("SELECT data_type FROM information_schema.columns WHERE "
                            "table_schema = 'app' AND table_name = 'sessions' AND "
                            "column_name = 'token'").fetchone()[0] == "uuid"


def evidence_approval_id(runbook):
    from checklist.rules import schema_approval

    return schema_approval(runbook).pk


def test_pgmigrate_run_refuses_a_schema_file_that_differs(tmp_path, target_db):
    source = make_source(tmp_path / "app.db")
    work = tmp_path / "work"
    report = steps.schema({"app": source}, target_db, work)
    with pytest.raises(CommandError) as refused:
        call_command("pgmigrate", "run", "--source", f"app={source}", "--target", target_db,
                     "--workdir", str(work), "--schema-sha256", "0" * 64)
    assert refused.value.returncode == 2
    assert "unified_schema.sql has sha256" in str(refused.value)
    assert report.schema_sha256 in str(refused.value)
    call_command("pgmigrate", "run", "--source", f"app={source}", "--target", target_db,
                 "--workdir", str(work), "--schema-sha256", report.schema_sha256)
    with psycopg.connect(target_db) as conn:
        assert conn.execute("SELECT count(*) FROM app.sessions").fetchone()[0] == 3


def test_a_changed_source_schema_is_refused_never_regenerated(tmp_path, target_db):
    source = make_source(tmp_path / "app.db")
    work = tmp_path / "work"
    report = steps.schema({"app": source}, target_db, work)
    with sqlite3.connect(source) as db:
        db.execute("ALTER TABLE sessions ADD COLUMN added TEXT")
    with pytest.raises(CommandError) as refused:
        call_command("pgmigrate", "run", "--source", f"app={source}", "--target", target_db,
                     "--workdir", str(work))
    assert "schema of app" in str(refused.value) and "changed" in str(refused.value)
    assert file_sha256(work / "unified_schema.sql") == report.schema_sha256
