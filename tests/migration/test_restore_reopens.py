"""The restore reopens every restored file and compares its row counts (issue 10, part 4)."""
import json
import sqlite3

from migration import steps
from migration.backup import latest_manifest


def _source(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",), ("c",)])
    return path


def test_a_restore_reopens_the_files_and_matches_the_row_counts(tmp_path):
    source = _source(tmp_path / "app.db")
    steps.backup({"app": source}, tmp_path / "work")
    report = steps.restore(None, tmp_path / "restored", workdir=tmp_path / "work")
    assert report.ok, report.problems
    with sqlite3.connect(report.files[0]["path"]) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 3


def test_a_restore_whose_row_counts_differ_from_the_manifest_fails(tmp_path):
    source = _source(tmp_path / "app.db")
    steps.backup({"app": source}, tmp_path / "work")
    manifest = latest_manifest(tmp_path / "work")
    data = json.loads(manifest.read_text())
    data["files"][0]["row_counts"]["t"] = 4  # the manifest says the backup held 4 rows
    manifest.write_text(json.dumps(data))
    report = steps.restore(None, tmp_path / "restored", workdir=tmp_path / "work")
    assert not report.ok
    assert any("row counts after restore differ" in p and "t" in p for p in report.problems)
