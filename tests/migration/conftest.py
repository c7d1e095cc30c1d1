"""Fixtures for the migration engine's tests: a fresh PostgreSQL database per module, copies of
the MINGUS fixtures, and the hand-built hard SQLite files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from .sqlite_files import build_hard

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
FIXTURES = SHARED / "fixtures" / "mingus"
FIVE = {"mingus": "mingus.db", "alerts": "alerts.db", "bi": "business_intelligence.db", "cache": "cache.db",
        "perf": "performance_metrics.db"}
ALL_SIX = {**FIVE, "instance": "instance-mingus.db"}
PG_HOST = "127.0.0.1:5432"
ADMIN_URL = f"postgresql://root@{PG_HOST}/postgres"


def create_database(prefix: str) -> str:
    name = f"eng_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def target_url(request):
    """A PostgreSQL database of its own for the test module, dropped afterwards."""
    name = create_database(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20])
    yield f"postgresql://root@{PG_HOST}/{name}"
    drop_database(name)


def copy_fixtures(dest: Path, names: dict = ALL_SIX) -> dict:
    """Writable copies of the MINGUS fixtures ({source name: path})."""
    if not FIXTURES.exists():
        pytest.fail(f"{FIXTURES} is missing: the tests read the MINGUS fixtures from ../shared beside the repo")
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, fname in names.items():
        shutil.copyfile(FIXTURES / fname, dest / fname)
        os.chmod(dest / fname, 0o644)
        out[name] = dest / fname
    return out


@pytest.fixture
def hard_source(tmp_path) -> dict:
    return {"hard": build_hard(tmp_path / "hard.db")}


def pg(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def manage(*args, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """Run ``manage.py pgmigrate ...`` in a subprocess, as an operator would."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mingus_deploy.settings_test"}
    env.setdefault("DATABASE_URL", f"postgres://root@{PG_HOST}/mingus_eng")
    return subprocess.run([sys.executable, str(REPO / "manage.py"), "pgmigrate", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, **kwargs)


def source_args(sources: dict) -> list:
    out = []
    for name, path in sources.items():
        out += ["--source", f"{name}={path}"]
    return out
