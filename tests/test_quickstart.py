"""The README's run command on the embedded defaults: SQLite, a filesystem broker, a real worker.

Runs `scripts/run.sh` (what `make run` runs) with its own var/ folder and port, logs in through the
served login page, and has the worker run a job queued by `manage.py run_job`.
"""
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def quickstart(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT",
                        "JOB_WORKDIR", "SECRET_KEY")}
    env.update({"MINGUS_VAR_DIR": str(tmp_path / "var"), "PORT": str(port),
                "DEMO_PASSWORD": "demo-pass-123", "PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, ready = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "Booting worker" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(300), "".join(lines)
    assert proc.poll() is None, "".join(lines)
    yield port, env, lines
    os.killpg(proc.pid, signal.SIGTERM)  # as Ctrl-C reaches the terminal's process group
    proc.wait(timeout=60)
    # The worker and beat run in sessions of their own; the script's stop() must have ended them.
    assert not processes_with_env("MINGUS_VAR_DIR", env["MINGUS_VAR_DIR"])


def processes_with_env(name, value):
    """Pids of live processes whose environment holds name=value."""
    wanted, found = f"{name}={value}".encode(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if wanted in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_make_run_serves_the_app_and_its_worker_runs_jobs(quickstart):
    port, env, lines = quickstart
    out = "".join(lines)
    assert f"http://127.0.0.1:{port}/" in out
    assert "member" in out and "lead2" in out and "auditor" in out and "demo-pass-123" in out
    assert "Pre-Deployment Phase (gated): 7 groups, 32 items" in out

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    opener.open(f"{base}/login/").read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    data = urllib.parse.urlencode({"username": "member", "password": "demo-pass-123",
                                   "csrfmiddlewaretoken": token}).encode()
    page = opener.open(urllib.request.Request(f"{base}/login/", data=data,
                                              headers={"Referer": f"{base}/login/"})).read().decode()
    assert "MINGUS production (demo)" in page

    # The same ASGI server as app-spec.yaml: the runbook page streams its changes, here from the
    # embedded SQLite (the watcher reads the revision), a tick made by another process included.
    assert "sse-connect" in opener.open(f"{base}/runbooks/1/").read().decode()
    stream = opener.open(f"{base}/runbooks/1/events/?page=runbook&rev=0", timeout=60)
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert stream.readline().startswith(b"retry: ")
    tick = ("from checklist import actions; from checklist.models import ItemState;"
            "from django.contrib.auth.models import User;"
            "st = ItemState.objects.filter(runbook_id=1, item__job_bindings__isnull=True)"
            ".order_by('pk').first();"
            "actions.tick(User.objects.get(username='member'), st); print('TICKED', st.pk)")
    ticked = subprocess.run([sys.executable, "manage.py", "shell", "-c", tick], cwd=REPO,
                            env=dict(env, DEBUG="true"), capture_output=True, text=True)
    state = re.search(r"TICKED (\d+)", ticked.stdout)
    assert state, ticked.stdout + ticked.stderr
    event = b""
    while not event.startswith(b"id: "):  # past any ": ping" comment
        event = b""
        while not event.endswith(b"\n\n"):
            event += stream.readline()
    assert event.startswith(b"id: ") and f'id="item-{state.group(1)}"'.encode() in event
    stream.close()

    manage = [sys.executable, "manage.py"]
    env = dict(env, DEBUG="true")
    subprocess.run(manage + ["shell", "-c",
                             "from checklist.models import CommandSpec;"
                             "CommandSpec.objects.create(name='hello', argv=['python3', '-c', 'print(42)'])"],
                   cwd=REPO, env=env, check=True)
    result = subprocess.run(manage + ["run_job", "1", "command:hello", "--user", "member", "--wait",
                                      "--timeout", "120"],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Run #\d+ command:hello: succeeded", result.stdout)
    assert re.search(r"sha256 [0-9a-f]{64}", result.stdout)
    # SQLite in WAL mode, so the web process and the worker write at the same time.
    import sqlite3

    db = sqlite3.connect(Path(env["MINGUS_VAR_DIR"]) / "mingus.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
