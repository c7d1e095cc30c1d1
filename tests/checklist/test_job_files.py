"""Jobs read only regular files under the configured roots; nothing hangs on a FIFO.

Sources through a real worker (its SOURCE_ROOTS narrowed to one folder), checked files through
the real task body, checklists through the real command.
"""
import os
import shutil
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from checklist import actions
from checklist.models import ChecklistTemplate, TaskRun
from checklist.job_context import app_private_files
from checklist.tasks import run_job
from deploychecks.models import RunbookCheckSettings

from tests.conftest import FIXTURES, SEED, ended, wait_for_run
from tests.worker import start_worker


def _start(client, runbook, kind):
    response = client.post(f"/api/runbooks/{runbook.pk}/jobs/", {"kind": kind},
                           content_type="application/json")
    assert response.status_code == 202, response.content
    return TaskRun.objects.get(pk=response.json()["id"])


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sources_outside_the_roots_or_not_regular_files_fail_at_once_naming_the_path(
        client, runbook, users, tmp_path):
    root = tmp_path / "sources"
    root.mkdir()
    outside = tmp_path / "mingus.db"
    shutil.copyfile(FIXTURES / "mingus.db", outside)
    fifo = root / "alerts.db"
    os.mkfifo(fifo)
    os.symlink(outside, root / "escape.db")
    shutil.copyfile(FIXTURES / "mingus.db", root / "good.db")
    worker = start_worker(extra_env={"SOURCE_ROOTS": str(root)})
    client.force_login(users["member"])
    try:
        for path, why in ((outside, "is outside the allowed folders"), (fifo, "is a FIFO"),
                          (root / "escape.db", "is a symlink leading to"), ("/dev/zero", "is outside")):
            actions.set_sources(users["lead"], runbook, {"mingus": str(path)})
            t0 = time.monotonic()
            run = wait_for_run(_start(client, runbook, "backup"), ended, timeout=30)
            assert run.state == "failed", run.log
            assert f"source {path}: {why}" in run.error
            assert time.monotonic() - t0 < 20  # refused, not read until the time limit
        actions.set_sources(users["lead"], runbook, {"mingus": str(root / "good.db")})
        run = wait_for_run(_start(client, runbook, "assess"), ended, timeout=120)
        assert run.state == "succeeded", run.error + run.log
    finally:
        worker.stop()


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_the_apps_own_sqlite_database_is_never_a_source(tmp_path):
    db = tmp_path / "mingus.sqlite3"
    with override_settings(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db}}):
        assert db in app_private_files()


@pytest.mark.django_db
def test_checked_files_are_held_to_the_check_file_roots(runbook, users, tmp_path, settings):
    settings.CHECK_FILE_ROOTS = [tmp_path / "checked"]
    (tmp_path / "checked").mkdir()
    os.mkfifo(tmp_path / "checked" / "app-spec.yaml")
    cs = RunbookCheckSettings.for_runbook(runbook)
    for path, why in (("/etc/passwd", "is outside the allowed folders"),
                      (str(tmp_path / "checked" / "app-spec.yaml"), "is a FIFO")):
        cs.app_spec_path = path
        cs.save()
        run = TaskRun.objects.create(runbook=runbook, kind="check-app-spec", started_by=users["lead"])
        run_job(run.pk)
        run.refresh_from_db()
        assert run.state == "failed"
        assert f"checked file {path}: {why}" in run.error
        assert "root:" not in run.log + run.error


@pytest.mark.django_db
def test_import_refuses_a_fifo_a_device_and_an_oversized_file_with_exit_2(tmp_path, settings):
    fifo = tmp_path / "checklist.md"
    os.mkfifo(fifo)
    for path, why in ((fifo, "is a FIFO"), ("/dev/zero", "is a device")):
        t0 = time.monotonic()
        with pytest.raises(CommandError) as exc:
            call_command("import_checklist", str(path))
        assert exc.value.returncode == 2
        assert f"{path}: {why}" in str(exc.value)
        assert time.monotonic() - t0 < 5
    settings.CHECKLIST_MAX_BYTES = 1000
    with pytest.raises(CommandError) as exc:
        call_command("import_checklist", str(SEED))
    assert exc.value.returncode == 2 and "more than the 1000 allowed" in str(exc.value)
    assert ChecklistTemplate.objects.count() == 0
