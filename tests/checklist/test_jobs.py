"""Jobs through a real Celery worker process on the real Redis and PostgreSQL."""
import json
import os
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from checklist import actions, job_actions
from checklist.models import AuditEvent, CommandSpec, Evidence, ItemState, TaskRun
from migration.hashing import file_sha256

from tests.conftest import assert_secret_absent, ended, wait_for_run
from tests.worker import start_worker

SECRET = "s3cr3t-Pa55word-zq81"

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def command(name, code, timeout=60, secret_env=()):
    return CommandSpec.objects.create(name=name, argv=[sys.executable, "-c", code],
                                      timeout_seconds=timeout, secret_env=list(secret_env))


def init_db_state(runbook):
    return ItemState.objects.get(runbook=runbook, item__text="`init_db.py` executed successfully")


@pytest.fixture
def open_migration(runbook, users):
    """The MINGUS runbook with Pre-Deployment signed off, so Migration items can be earned."""
    from .factories import sign_off_through

    sign_off_through(runbook, 1, users["member"], users["lead"])
    return runbook


@pytest.fixture
def secret_worker(transactional_db):
    w = start_worker(extra_env={"DB_PASSWORD": SECRET})
    yield w
    w.stop()


def test_command_job_succeeds_earns_its_item_and_keeps_evidence(open_migration, users, secret_worker):
    command("init-db", "import os; print('tables created'); print('pw', os.environ['DB_PASSWORD'])",
            secret_env=["DB_PASSWORD"])
    run = job_actions.start_job(users["member"], open_migration, "command:init-db")
    assert run.state == "queued"
    run = wait_for_run(run, ended)

    assert run.state == "succeeded", run.error + run.log
    state = init_db_state(open_migration)
    assert state.checked and state.checked_by == users["member"]
    assert state.earned_by == f"command:init-db run #{run.pk}"
    evidence = list(run.evidence.all())
    names = {e.name for e in evidence}
    assert {"command:init-db-report.json", f"command-init-db-run{run.pk}.out",
            "command:init-db.log", "figures"} <= names
    for e in evidence:
        if e.path:
            assert file_sha256(settings.MEDIA_ROOT / e.path) == e.sha256
    out = next(e for e in evidence if e.name.endswith(".out"))
    text = (settings.MEDIA_ROOT / out.path).read_text()
    assert "tables created" in text and "pw ***" in text
    assert next(e for e in evidence if e.kind == "figures").figures["exit_code"] == 0
    assert_secret_absent(SECRET)


def test_failing_command_leaves_the_item_unticked_and_says_why(open_migration, users, worker):
    command("init-db", "import sys; print('no tables'); sys.exit(3)")
    run = wait_for_run(job_actions.start_job(users["member"], open_migration, "command:init-db"), ended)
    assert run.state == "failed"
    assert run.error == "init-db exited with code 3."
    assert not init_db_state(open_migration).checked
    # It can be run again; the old run stays in the history.
    again = wait_for_run(job_actions.start_job(users["member"], open_migration, "command:init-db"), ended)
    assert again.pk != run.pk and TaskRun.objects.filter(kind="command:init-db").count() == 2


def test_command_past_its_time_limit_is_killed(open_migration, users, worker):
    command("init-db", "import time\nwhile True: time.sleep(0.05)", timeout=1)
    run = wait_for_run(job_actions.start_job(users["member"], open_migration, "command:init-db"), ended)
    assert run.state == "failed" and "ran past its 1s limit" in run.error
    assert not init_db_state(open_migration).checked


def test_a_second_run_of_the_same_job_is_refused_while_one_is_active(open_migration, users, worker):
    command("init-db", "import time\nwhile True: time.sleep(0.05)", timeout=120)
    run = job_actions.start_job(users["member"], open_migration, "command:init-db")
    with pytest.raises(actions.Refused) as exc:
        job_actions.start_job(users["lead"], open_migration, "command:init-db")
    assert exc.value.status == 409 and "already queued or running" in str(exc.value)
    wait_for_run(run, lambda r: r.state == "running")
    job_actions.cancel_run(users["lead"], run)
    run = wait_for_run(run, ended)
    assert run.state == "cancelled"
    assert AuditEvent.objects.filter(action="job-cancel").exists()
    assert not init_db_state(open_migration).checked


def test_a_killed_worker_leaves_the_run_lost_and_a_re_run_works(open_migration, users):
    command("init-db", "import time\nwhile True: time.sleep(0.05)", timeout=300)
    first = start_worker()
    try:
        run = job_actions.start_job(users["member"], open_migration, "command:init-db")
        wait_for_run(run, lambda r: r.state == "running")
        first.kill()
    finally:
        first.stop()
    # The same worker name starting again marks its earlier runs lost at once.
    second = start_worker(queue=first.queue, name=first.name)
    try:
        run = wait_for_run(run, ended)
        assert run.state == "lost" and "stopped" in run.error
        CommandSpec.objects.filter(name="init-db").update(argv=[sys.executable, "-c", "print(1)"])
        again = wait_for_run(job_actions.start_job(users["member"], open_migration, "command:init-db"), ended)
        assert again.state == "succeeded"
    finally:
        second.stop()


def test_run_job_command_waits_and_prints_evidence(open_migration, users, worker, capsys):
    command("init-db", "print('ok')")
    call_command("run_job", str(open_migration.pk), "command:init-db", "--user", "member",
                 "--wait", "--json")
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "succeeded" and doc["started_by"] == "member"
    assert all(len(e["sha256"]) == 64 for e in doc["evidence"] if e["kind"] != "figures")
    command("performance-test", "import sys; sys.exit(1)")
    with pytest.raises(SystemExit) as exc:
        call_command("run_job", str(open_migration.pk), "command:performance-test", "--wait")
    assert exc.value.code == 1


def test_api_starts_jobs_with_the_page_permissions(client, open_migration, users, worker):
    command("init-db", "print('ok')")
    url = f"/api/runbooks/{open_migration.pk}/jobs/"
    client.force_login(users["auditor"])
    response = client.post(url, {"kind": "command:init-db"}, content_type="application/json")
    assert response.status_code == 403
    client.force_login(users["member"])
    response = client.post(url, {"kind": "command:init-db"}, content_type="application/json")
    assert response.status_code == 202, response.content
    run = wait_for_run(TaskRun.objects.get(pk=response.json()["id"]), ended)
    doc = client.get(f"/api/runbooks/{open_migration.pk}/").json()
    items = [i for p in doc["phases"] for g in p["groups"] for i in g["items"]]
    init_item = next(i for i in items if i["text"] == "`init_db.py` executed successfully")
    assert init_item["jobs"] == ["command:init-db"]
    assert init_item["runs"][0]["state"] == "succeeded" and init_item["runs"][0]["id"] == run.pk
    assert init_item["runs"][0]["evidence"][0]["sha256"]


def test_jobs_in_a_locked_phase_are_refused(runbook, users):
    command("init-db", "print('ok')")
    with pytest.raises(actions.Refused) as exc:
        job_actions.start_job(users["member"], runbook, "command:init-db")
    assert "Migration opens when Pre-Deployment" in str(exc.value)


def test_evidence_cannot_be_changed():
    ev = Evidence(name="x", kind="report")
    ev._state.adding = False
    with pytest.raises(ValueError):
        ev.save()


def test_bindings_are_data_and_a_repeated_text_binds_only_its_group(template):
    from checklist.models import JobBinding

    bound = JobBinding.objects.filter(kind="check-connectivity",
                                      item__text="Authentication working correctly")
    assert [b.item.group.title for b in bound] == ["Database Connectivity"]
    backup = JobBinding.objects.filter(kind="backup", item__group__phase__template=template)
    assert backup.count() == 4
    assert {b.item.group.title for b in backup} == {"Backup Verification"}
