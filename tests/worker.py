"""A real Celery worker process for tests, on the real Redis and the test database.

`start_worker()` launches `celery -A mingus_deploy worker` in its own process group with the test
database, media and work folders, on a queue of its own (so concurrent test runs never steal each
other's jobs), and returns once the worker says it is ready. Tests that use it need
`transactional_db`, so what they write is committed and visible to the worker.
"""
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from mingus_deploy.celery import app as celery_app

REPO = Path(__file__).resolve().parents[1]


class Worker:
    def __init__(self, proc, queue, name, lines):
        self.proc, self.queue, self.name, self.lines = proc, queue, name, lines

    def output(self):
        return "".join(self.lines)

    def kill(self):
        """SIGKILL the whole worker (main process and pool children) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_env(extra=None):
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'root'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    if connection.vendor != "postgresql":
        url = f"sqlite:///{db['NAME']}"
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "mingus_deploy.settings_test",
        "DATABASE_URL": url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "JOB_WORKDIR": str(settings.JOB_WORKDIR),
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "AUDIT_SIGNING_KEY": settings.AUDIT_SIGNING_KEY,
        "AUDIT_DIGEST_DIR": str(settings.AUDIT_DIGEST_DIR),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def start_worker(queue=None, name=None, extra_env=None, timeout=60):
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    name = name or f"{queue}@localhost"
    celery_app.conf.task_default_queue = queue
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mingus_deploy", "worker", "-Q", queue, "-n", name,
         "-c", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel", "INFO"],
        cwd=REPO, env=worker_env(extra_env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    lines, ready = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if " ready." in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or proc.poll() is not None:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError("The Celery worker did not start:\n" + "".join(lines)[-3000:])
    return Worker(proc, queue, name, lines)
