"""Shared fixtures: users in each role, the MINGUS seed imported, a runbook on it."""
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEED = SHARED / "seed" / "mingus-deployment-checklist.md"
FIXTURES = SHARED / "fixtures" / "mingus"
ROLES = ("member", "lead", "auditor", "admin")


def _flush_around_audit_trigger():
    """Let the suite's own flush (transactional tests) empty the audit table.

    On PostgreSQL a trigger refuses TRUNCATE of audit events (migration 0004). Django's flush is
    the one TRUNCATE we want: it runs as the superuser the suite uses, so it disables that trigger
    inside its own transaction, exactly as an attacker with superuser rights could.
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    plain = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, **kwargs):
        sql = plain(self, style, tables, **kwargs)
        if sql and "checklist_auditevent" in tables:
            alter = "ALTER TABLE checklist_auditevent {} TRIGGER checklist_audit_no_truncate;"
            sql = [alter.format("DISABLE"), *sql, alter.format("ENABLE")]
        return sql

    DatabaseOperations.sql_flush = sql_flush


_flush_around_audit_trigger()


@pytest.fixture(autouse=True)
def audit_digest_dir(settings, tmp_path):
    """Each test writes its audit digests to a folder of its own: a digest names a head in one
    test database, and another test's digest would read as tampering in this one's."""
    settings.AUDIT_DIGEST_DIR = tmp_path / "audit-digests"
    return settings.AUDIT_DIGEST_DIR


def require_shared():
    if not SEED.exists():
        pytest.fail(f"../shared is missing: {SEED} not found (tests read the seed and fixtures "
                    "from ../shared beside the repository)")


def make_user(username, role=None):
    user = User.objects.create_user(username, password="pw-" + username)
    if role == "admin":
        user.is_superuser = user.is_staff = True
        user.save()
    if role:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    return user


@pytest.fixture
def users(db):
    return {
        "member": make_user("member", "member"),
        "lead": make_user("lead", "lead"),
        "lead2": make_user("lead2", "lead"),
        "auditor": make_user("auditor", "auditor"),
        "admin": make_user("admin", "admin"),
        "nobody": make_user("nobody"),
    }


@pytest.fixture
def template(db):
    from checklist.actions import import_template

    require_shared()
    tpl, _ = import_template(SEED.read_bytes(), name="MINGUS")
    return tpl


@pytest.fixture
def runbook(template, users):
    from checklist.actions import start_runbook

    return start_runbook(users["lead"], template, "MINGUS production")


@pytest.fixture
def worker(transactional_db):
    """A real Celery worker process on the real Redis and the test database."""
    from tests.worker import start_worker

    w = start_worker()
    yield w
    w.stop()


def wait_for_run(run, until, timeout=120):
    """Poll the run's row until `until(run)` holds; the worker is another process."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if until(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run #{run.pk} stayed {run.state} (step {run.step!r}); log:\n{run.log}")
        time.sleep(0.1)


def ended(run):
    return not run.active


def assert_secret_absent(secret):
    """Search every stored byte: the app's tables, evidence and work files."""
    import os

    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("checklist_taskrun", "checklist_evidence", "checklist_auditevent",
                      "checklist_itemnote", "deploychecks_performancebaseline",
                      "deploychecks_triggerfiring", "deploychecks_notification",
                      "deploychecks_monitorsample", "deploychecks_runbookchecksettings"):
            cursor.execute(f"SELECT * FROM {table}")
            assert secret not in repr(cursor.fetchall()), table
    for root in (settings.MEDIA_ROOT, settings.JOB_WORKDIR):
        for dirpath, _, files in os.walk(root):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    assert secret.encode() not in fh.read(), os.path.join(dirpath, f)
