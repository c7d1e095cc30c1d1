"""Cancel reaches the long steps: between backup pages, between tables, inside a long SQLite query."""
import sqlite3
import time

import pytest

from migration import steps
from migration.errors import Cancelled
from migration.progress import Reporter

from .conftest import copy_fixtures, FIVE


def test_a_cancelled_backup_stops_and_leaves_no_half_backup(tmp_path):
    sources = copy_fixtures(tmp_path / "src", FIVE)
    asked = []

    def cancel():
        asked.append(1)
        return True

    with pytest.raises(Cancelled):
        steps.backup(sources, tmp_path / "work", should_cancel=cancel)
    assert asked
    assert not list((tmp_path / "work" / "backups").rglob("*.db")) and not list(
        (tmp_path / "work" / "backups").rglob("*.partial"))


@pytest.mark.parametrize("step", ["assess", "schema", "cleanup"])
def test_assess_schema_and_cleanup_stop_on_cancel(tmp_path, step):
    sources = copy_fixtures(tmp_path / "src", FIVE)
    kwargs = {"target_url": None} if step == "schema" else {}
    with pytest.raises(Cancelled):
        getattr(steps, step)(sources, workdir=tmp_path / "work", should_cancel=lambda: True, **kwargs)
    if step == "cleanup":
        assert all(p.exists() for p in sources.values())


def test_a_long_sqlite_query_is_interrupted_within_seconds(tmp_path):
    t0 = time.monotonic()
    rep = Reporter("assess", should_cancel=lambda: time.monotonic() - t0 > 0.5)
    con = sqlite3.connect(tmp_path / "x.db")
    rep.watch(con)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        con.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n").fetchone()
    assert time.monotonic() - t0 < 10
