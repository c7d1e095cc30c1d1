"""The migrate job's chunks on Celery: two worker processes on the real Redis load every row
exactly once, also when one of them is SIGKILLed in the middle of a chunk."""
import os
import sqlite3
import threading
import time

import psycopg
import pytest

from checklist import actions
from checklist.chunk_tasks import load_chunk
from checklist.models import TaskRun
from migration import steps
from migration.remote import Remote
from migration.target import chunk_lock_key
from tests.worker import start_worker

from .conftest import PG_HOST, create_database, drop_database

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TABLES = {"users": 4000, "events": 6000, "metrics": 5000}


def make_source(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, created TEXT)")
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), "
                "kind TEXT, at TEXT)")
    con.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT, value REAL, blob BLOB)")
    con.executemany("INSERT INTO users VALUES (?, ?, ?)",
                    [(i, f"u{i}@example.com", "2024-01-02 03:04:05") for i in range(1, TABLES["users"] + 1)])
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                    [(i, 1 + i % TABLES["users"], f"kind{i % 7}", "2024-02-03 04:05:06")
                     for i in range(1, TABLES["events"] + 1)])
    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)",
                    [(i, f"m{i % 13}", i / 7, bytes([i % 256]) * 40) for i in range(1, TABLES["metrics"] + 1)])
    con.commit()
    con.close()
    return path


@pytest.fixture
def chunk_workers():
    queue = "chunks-" + __import__("uuid").uuid4().hex[:8]
    workers = [start_worker(queue=queue, name=f"{queue}-{n}@localhost") for n in (1, 2)]
    yield queue, workers
    for w in workers:
        w.stop()


@pytest.fixture
def target_url():
    """A database of its own per test: each run here generates its own plan."""
    name = create_database("chunks")
    yield f"postgresql://root@{PG_HOST}/{name}"
    drop_database(name)


@pytest.fixture
def run(runbook, users, tmp_path, target_url):
    source = make_source(tmp_path / "app.db")
    actions.set_sources(users["lead"], runbook, {"app": str(source)})
    actions.set_target(users["lead"], runbook, target_url)
    return TaskRun.objects.create(runbook=runbook, kind="migrate", started_by=users["lead"],
                                  state=TaskRun.RUNNING), {"app": source}


def _migrate(run, sources, queue, tmp_path, target_url, on_progress=None):
    def dispatch(task_id, payload):
        load_chunk.apply_async((run.pk, payload), queue=queue)

    return steps.run(sources, target_url, workdir=tmp_path / "work", chunk_rows=250, workers=2,
                     remote=Remote(dispatch, slots=2, redeliver_after=1.0), progress=on_progress)


def _assert_every_row_once(target_url):
    with psycopg.connect(target_url, autocommit=True) as conn:
        for table, rows in TABLES.items():
            count, distinct = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM app.{table}").fetchone()
            assert (count, distinct) == (rows, rows), table
        loaded = conn.execute("SELECT sum(rows_loaded), count(*) FROM _pgmigrate.progress").fetchone()
        assert loaded[0] == sum(TABLES.values())
        by = {r[0] for r in conn.execute("SELECT DISTINCT loaded_by FROM _pgmigrate.progress")}
    return by


def test_two_workers_load_every_row_exactly_once(run, chunk_workers, tmp_path, target_url, settings):
    """As the migrate job sends them: remote_for(run) with MIGRATION_CHUNK_QUEUE set."""
    from checklist.chunk_tasks import remote_for

    taskrun, sources = run
    queue, workers = chunk_workers
    assert remote_for(taskrun) is None  # unset: the job's own processes load
    settings.MIGRATION_CHUNK_QUEUE, settings.MIGRATION_CHUNK_SLOTS = queue, 2
    remote = remote_for(taskrun)
    assert remote.slots == 2
    report = steps.run(sources, target_url, workdir=tmp_path / "work", chunk_rows=250, remote=remote)
    assert report.ok, report.problems
    by = _assert_every_row_once(target_url)
    assert len(by) == 2, by  # both workers loaded chunks
    assert report.to_dict()["totals"]["loader_processes"] == 2


def test_a_worker_killed_mid_chunk_loses_and_doubles_nothing(run, chunk_workers, tmp_path, target_url):
    """The test holds one chunk's lock, so the worker that takes that chunk waits inside its
    transaction; that worker is SIGKILLed there (message unacked, transaction open), the lock is
    let go, and the coordinator sends the chunk again to the survivor."""
    taskrun, sources = run
    queue, workers = chunk_workers
    held = chunk_lock_key("app", "events", 3)
    outcome = {}
    with psycopg.connect(target_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (held,))
        coordinator = threading.Thread(target=lambda: outcome.update(
            report=_migrate(taskrun, sources, queue, tmp_path, target_url)))
        coordinator.start()
        waiting = _wait_for(lambda: holder.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name LIKE 'pgmigrate worker %'"
        ).fetchone())
        loader_pid = int(waiting[0].rsplit(" ", 1)[1])
        doomed = next(w for w in workers if os.getpgid(loader_pid) == w.proc.pid)
        survivor = next(w for w in workers if w is not doomed)
        doomed.kill()  # SIGKILL, main process and pool child, in the middle of the chunk
        holder.execute("SELECT pg_advisory_unlock(%s)", (held,))
    coordinator.join(timeout=300)
    assert not coordinator.is_alive()
    report = outcome["report"]
    assert report.ok, report.problems
    _assert_every_row_once(target_url)
    log = (tmp_path / "work" / "logs" / "run.log").read_text()
    assert "app.events chunk 3: no worker took it" in log and "sent again" in log
    with psycopg.connect(target_url, autocommit=True) as conn:
        by = conn.execute("SELECT loaded_by FROM _pgmigrate.progress WHERE table_name = 'events' "
                          "AND chunk_no = 3").fetchone()[0]
    assert os.getpgid(int(by.rsplit(":", 1)[1])) == survivor.proc.pid
    assert doomed.proc.poll() is not None and survivor.proc.poll() is None


def _wait_for(probe, timeout=60):
    """Poll `probe` until it returns something (a condition, not a fixed pause)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


def test_a_chunk_naming_a_file_that_is_not_a_source_reads_nothing(run, tmp_path, target_url,
                                                                 caplog, monkeypatch):
    """The message is hostile until checked: a chunk whose file is not one of the runbook's
    sources is dropped before anything opens it (the worker would otherwise read any path)."""
    from migration.load import TableJob
    from migration.remote import encode

    taskrun, _ = run
    other = make_source(tmp_path / "elsewhere.db")
    job = TableJob(key="app.users", source="app", path=str(other), table="users",
                   target="app.users", columns=[], rowid_name="id", key_columns=["id"])
    opened = []
    monkeypatch.setattr("checklist.chunk_tasks.load_remote_chunk", lambda *a: opened.append(a))
    load_chunk.run(taskrun.pk, {"args": encode({"job": job, "chunk_no": 0, "lo": 1, "hi": 10})})
    assert opened == []
    assert "not a source of the runbook; ignored" in caplog.text
    # The same chunk naming the runbook's own source goes through.
    job.path = str(run[1]["app"])
    load_chunk.run(taskrun.pk, {"args": encode({"job": job, "chunk_no": 0, "lo": 1, "hi": 10})})
    assert len(opened) == 1
    with psycopg.connect(target_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('_pgmigrate.progress')").fetchone()[0] is None
