"""A command job's processes die with their worker and with a lost run; no process outlives its run.

Real worker processes on the real Redis and PostgreSQL; the worker is SIGKILLed as a whole
(tests/worker.py `Worker.kill()`), which before the lifeline left the command running forever.
"""
import sys
import time

import pytest

from checklist import job_actions
from checklist.lifeline import alive
from checklist.models import CommandSpec
from checklist.job_context import group_file
from checklist.runner import mark_lost_runs

from tests.conftest import wait_for_run
from tests.worker import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The command starts a grandchild, then both sleep; it writes both pids where the test reads them.
SPAWN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open({pids!r} + ".tmp", "w") as fh:
    fh.write(f"{{os.getpid()}} {{child.pid}}")
os.rename({pids!r} + ".tmp", {pids!r})
time.sleep(600)
"""


@pytest.fixture
def open_migration(runbook, users):
    from .factories import sign_off_through

    sign_off_through(runbook, 1, users["member"], users["lead"])
    return runbook


def _start_spawning(runbook, user, tmp_path):
    pids = tmp_path / "pids"
    CommandSpec.objects.create(name="init-db", argv=[sys.executable, "-c", SPAWN.format(pids=str(pids))],
                               timeout_seconds=600)
    run = job_actions.start_job(user, runbook, "command:init-db")
    wait_for_run(run, lambda r: r.state == "running")
    deadline = time.monotonic() + 60
    while not pids.exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    found = [int(p) for p in pids.read_text().split()]
    assert all(alive(p) for p in found)
    return run, found


def _gone(pids, within=20):
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_sigkilled_worker_takes_its_command_and_the_commands_children_with_it(open_migration, users, tmp_path):
    worker = start_worker()
    try:
        run, pids = _start_spawning(open_migration, users["member"], tmp_path)
        worker.kill()
        assert _gone(pids), f"still running after the worker was killed: {pids}"
    finally:
        worker.stop()


def test_marking_a_run_lost_kills_its_process_group(open_migration, users, tmp_path):
    worker = start_worker()
    try:
        run, pids = _start_spawning(open_migration, users["member"], tmp_path)
        assert group_file(run).exists()
        # As when a worker is hung rather than dead: the run is declared lost while the worker lives.
        assert mark_lost_runs(hostname=run.worker) == 1
        assert _gone(pids), f"still running after the run was marked lost: {pids}"
        run = wait_for_run(run, lambda r: not r.active)
        assert run.state in ("lost", "failed")
        assert not group_file(run).exists()
    finally:
        worker.stop()


def test_a_finished_command_leaves_nothing_running(open_migration, users, worker, tmp_path):
    pids = tmp_path / "pids"
    code = ("import os, subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pids)!r}, 'w').write(str(child.pid))\nprint('done')\n")
    CommandSpec.objects.create(name="init-db", argv=[sys.executable, "-c", code], timeout_seconds=60)
    run = wait_for_run(job_actions.start_job(users["member"], open_migration, "command:init-db"), lambda r: not r.active)
    assert run.state == "succeeded", run.error + run.log
    assert _gone([int(pids.read_text())], within=10)
