"""The migrate job timed as the Run button runs it: a POST to the app's jobs API, the Celery
task on a real worker (`celery -A mingus_deploy worker -c 2`, as scripts/run.sh starts it),
the engine's run step inside it, evidence and progress recorded by the app.

    .venv/bin/python bench/migrate_job_bench.py --db FILE --json

Called by bench/migrate_bench.py (which has no Django) with the bench's SQLite file. Sets up a
throwaway app database (migrated, the MINGUS seed imported, a runbook with the file as its
source), runs the schema job, approves its unified_schema.sql as a lead, signs off the first
gated phase, then times the migrate job from the POST to the run's end. Needs PostgreSQL on
127.0.0.1:5432 (trust auth for root) and Redis on 127.0.0.1:6379; drops what it creates.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
SEED = REPO.parent / "shared" / "seed" / "mingus-deployment-checklist.md"


def _create(name: str) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://root@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_worker(env: dict, queue: str):
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mingus_deploy", "worker", "-Q", queue, "-n", f"{queue}@localhost",
         "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, ready = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if " ready." in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120) or proc.poll() is not None:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError("the Celery worker did not start:\n" + "".join(lines)[-3000:])
    return proc


def _wait(run, timeout: float = 1800):
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if not run.active:
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run #{run.pk} did not end in {timeout}s; log:\n{run.log[-3000:]}")
        time.sleep(0.05)


def job_path(db: Path) -> dict:
    """{seconds, loader_processes, engine_seconds, ...} of the migrate job on `db`."""
    tag = uuid.uuid4().hex[:6]
    app_name, target_name = f"eng_bench_app_{tag}", f"eng_bench_job_{tag}"
    base = Path(tempfile.mkdtemp(prefix="pgmigrate-jobbench-"))
    queue = f"bench-{tag}"
    env = {
        "DJANGO_SETTINGS_MODULE": "mingus_deploy.settings_test",
        "DATABASE_URL": _create(app_name).replace("postgresql://", "postgres://"),
        "MEDIA_ROOT": str(base / "media"), "JOB_WORKDIR": str(base / "work"),
        "SOURCE_ROOTS": str(db.parent), "AUDIT_DIGEST_DIR": str(base / "digests"),
        "PYTHONUNBUFFERED": "1",
    }
    target = _create(target_name)
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    worker = None
    try:
        import django

        django.setup()
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command
        from django.test import Client

        from checklist import actions, rules
        from checklist.models import TaskRun
        from mingus_deploy.celery import app as celery_app

        call_command("migrate", verbosity=0)
        users = {}
        for role in ("member", "lead"):
            users[role] = User.objects.create_user(role, password=f"pw-{role}-{tag}")
            users[role].groups.add(Group.objects.get_or_create(name=role)[0])
        template, _ = actions.import_template(SEED.read_bytes(), name="MINGUS")
        runbook = actions.start_runbook(users["lead"], template, "bench")
        actions.set_sources(users["lead"], runbook, {"bench": str(db)})
        actions.set_target(users["lead"], runbook, target)
        celery_app.conf.task_default_queue = queue
        worker_env = {**os.environ, **env, "CELERY_BROKER_URL": celery_app.conf.broker_url}
        worker = _start_worker(worker_env, queue)
        client = Client(HTTP_HOST="localhost")
        client.force_login(users["member"])

        def run_job(kind: str):
            t0 = time.perf_counter()
            response = client.post(f"/api/runbooks/{runbook.pk}/jobs/", {"kind": kind}, content_type="application/json")
            if response.status_code != 202:
                raise RuntimeError(f"{kind}: {response.status_code} {response.content[:500]!r}")
            run = _wait(TaskRun.objects.get(pk=response.json()["id"]))
            seconds = time.perf_counter() - t0
            if run.state != "succeeded":
                raise RuntimeError(f"{kind} job {run.state}: {run.error}\n{run.log[-3000:]}")
            return run, seconds

        schema_run, schema_s = run_job("schema")
        actions.approve_schema(users["lead"], runbook, rules.latest_schema_evidence(runbook), "bench")
        from tests.checklist.factories import complete_phase  # the tests' way through Pre-Deployment

        first = rules.RunbookFacts.load(runbook).gated[0]
        complete_phase(runbook, first, users["member"])
        actions.sign_off(users["lead"], runbook, first, "bench")
        run, seconds = run_job("migrate")
        figures = run.evidence.get(kind="figures").figures
        report = next((e for e in run.evidence.all() if e.name.endswith(".json") and "run" in e.name), None)
        return {"seconds": seconds, "schema_job_seconds": schema_s,
                "loader_processes": figures.get("loader_processes"), "loaded": figures.get("loaded"),
                "worker_started_to_finished": (run.finished_at - run.started_at).total_seconds()
                if run.started_at and run.finished_at else None,
                "report": report.name if report else None}
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        _drop(app_name)
        _drop(target_name)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = job_path(args.db.resolve())
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
