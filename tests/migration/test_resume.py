"""A run killed at any moment -- SIGKILL of the process, or its database connections cut --
finishes when started again, with every row loaded exactly once."""
import json
import os
import select
import signal
import subprocess
import sys

import pytest

from migration import steps

from .conftest import PG_HOST, REPO, create_database, drop_database, manage, pg
from .sqlite_files import build_big

EVENTS = 600_000
CHUNK = 3000  # small chunks: many commits, and a run long enough to be interrupted mid-way


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    base = tmp_path_factory.mktemp("big")
    return {"big": build_big(base / "big.db", rows=EVENTS)}


@pytest.fixture
def fresh_target():
    name = create_database("resume")
    yield f"postgresql://root@{PG_HOST}/{name}"
    drop_database(name)


def start_run(sources, url, workdir):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mingus_deploy.settings_test"}
    env.setdefault("DATABASE_URL", f"postgres://root@{PG_HOST}/mingus_eng")
    args = [sys.executable, str(REPO / "manage.py"), "pgmigrate", "run", "--source", f"big={sources['big']}",
            "--target", url, "--workdir", str(workdir), "--workers", "2", "--chunk-rows", str(CHUNK)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def committed_chunks(url):
    with pg(url) as conn:
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = '_pgmigrate'").fetchone():
            return 0, 0
        done = conn.execute("SELECT count(*) FROM _pgmigrate.progress WHERE rows_read IS NOT NULL").fetchone()[0]
        total = conn.execute("SELECT coalesce(sum(chunks), 0) FROM _pgmigrate.tables").fetchone()[0]
        return done, total


def wait_for_committed_chunks(proc, url):
    """Read the run's progress lines until PostgreSQL holds some, but not all, committed chunks."""
    for line in proc.stderr:
        if not line.startswith("run: "):  # progress ("run: 123/600000 rows ...") and log lines
            continue
        done, total = committed_chunks(url)
        if 0 < done < total:
            return done, total
    pytest.fail(f"the run ended before it could be interrupted (exit {proc.wait()})")


def descendants(pid):
    """Every process below `pid` (workers come from a fork server: they are grandchildren)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def wait_gone(pids):
    """Block until each process has exited (pidfd becomes readable), at most 30 s each."""
    for p in pids:
        try:
            fd = os.pidfd_open(p)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"process {p} outlived its killed parent: {_cmdline(p)}"
        finally:
            os.close(fd)


def assert_exactly_once(url, report):
    assert report["ok"], report["problems"]
    for t in report["tables"]:
        assert t["read"] == t["loaded"] == t["rows_at_start"] == t["in_target"], t
    with pg(url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM big.events").fetchone() == (EVENTS, EVENTS)
        assert conn.execute("SELECT count(*) FROM big.accounts").fetchone()[0] == 5000
        chunks = conn.execute("SELECT count(*), sum(rows_loaded) FROM _pgmigrate.progress "
                              "WHERE table_name = 'events'").fetchone()
        assert chunks == (EVENTS // CHUNK, EVENTS)


def test_sigkilled_run_resumes_with_every_row_once(big, fresh_target, tmp_path):
    work = tmp_path / "work"
    steps.schema(big, fresh_target, work)
    proc = start_run(big, fresh_target, work)
    try:
        wait_for_committed_chunks(proc, fresh_target)
        workers = descendants(proc.pid)
        assert len(workers) >= 3  # the fork server and its two workers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_gone(workers)
    finally:
        if proc.poll() is None:
            proc.kill()
    done, total = committed_chunks(fresh_target)
    assert 0 < done < total
    with pg(fresh_target) as conn:  # what committed is whole chunks, nothing in between
        loaded = conn.execute("SELECT coalesce(sum(rows_loaded), 0) FROM _pgmigrate.progress").fetchone()[0]
        in_tables = sum(conn.execute(f"SELECT count(*) FROM big.{t}").fetchone()[0] for t in ("accounts", "events"))
        assert in_tables == loaded
    again = manage("run", "--source", f"big={big['big']}", "--target", fresh_target, "--workdir", work, "--json",
                   "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    assert_exactly_once(fresh_target, json.loads(again.stdout))
    check = manage("validate", "--source", f"big={big['big']}", "--target", fresh_target, "--workdir", work, "--json")
    assert check.returncode == 0, check.stdout[-2000:]
    assert json.loads(check.stdout)["totals"]["differences"] == 0


def test_run_whose_database_connections_are_cut_exits_2_and_resumes(big, fresh_target, tmp_path):
    work = tmp_path / "work"
    steps.schema(big, fresh_target, work)
    proc = start_run(big, fresh_target, work)
    try:
        wait_for_committed_chunks(proc, fresh_target)
        with pg(fresh_target) as conn:  # as a server restart or failover would
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, stderr
    assert fresh_target.rsplit("/", 1)[-1] in stderr
    again = manage("run", "--source", f"big={big['big']}", "--target", fresh_target, "--workdir", work, "--json")
    assert again.returncode == 0, again.stderr
    assert_exactly_once(fresh_target, json.loads(again.stdout))


def test_cancelled_run_stops_and_resumes(big, fresh_target, tmp_path):
    work = tmp_path / "work"
    events = []
    rep = steps.run(big, fresh_target, work, progress=events.append, should_cancel=lambda: bool(events), workers=2)
    assert not rep.ok and any("cancelled" in p for p in rep.problems)
    rep = steps.run(big, fresh_target, work, workers=2)
    assert rep.ok, rep.problems
    assert rep.totals["read"] == rep.totals["loaded"] and sum(t["in_target"] for t in rep.tables) == EVENTS + 5000
