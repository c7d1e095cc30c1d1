"""Safe file access (plain Python): only regular files under the roots, bounded, never hanging."""
import os
import sqlite3
import time

import pytest

from migration.errors import SourceError
from migration.safe_files import UnsafeFile, check_regular, read_bytes, read_text, resolve_under_roots
from migration.sources import check_source_file


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "sources"
    r.mkdir()
    return r


def _sqlite(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    return path


def _quick(fn, *args, **kwargs):
    """Call fn and return (exception, seconds): a FIFO must be refused at once, not block."""
    t0 = time.monotonic()
    with pytest.raises(UnsafeFile) as exc:
        fn(*args, **kwargs)
    return exc.value, time.monotonic() - t0


def test_a_regular_file_under_a_root_is_accepted_resolved(root):
    db = _sqlite(root / "a.db")
    os.symlink(db, root / "link.db")  # a symlink that stays inside the root is fine
    assert resolve_under_roots(root / "link.db", [root]) == db.resolve()


def test_a_fifo_is_refused_at_once_naming_the_path(root):
    fifo = root / "pipe.db"
    os.mkfifo(fifo)
    for fn, args in ((read_bytes, (fifo, 1000)), (check_regular, (fifo,)), (resolve_under_roots, (fifo, [root]))):
        exc, took = _quick(fn, *args)
        assert str(fifo) in str(exc) and "FIFO" in str(exc)
        assert took < 2
    with pytest.raises(SourceError, match=f"{fifo}: is a FIFO"):
        check_source_file(fifo)


def test_devices_and_directories_are_refused(root):
    exc, _ = _quick(read_bytes, "/dev/zero", 1 << 20)
    assert "/dev/zero: is a device" in str(exc)
    exc, _ = _quick(check_regular, root)
    assert f"{root}: is a directory" in str(exc)
    with pytest.raises(SourceError, match="is a device"):
        check_source_file("/dev/zero")


def test_paths_outside_the_roots_are_refused(root, tmp_path):
    outside = _sqlite(tmp_path / "outside.db")
    with pytest.raises(UnsafeFile, match=f"source {outside}: is outside the allowed folders"):
        resolve_under_roots(outside, [root], what="source")
    with pytest.raises(UnsafeFile, match="must be an absolute path"):
        resolve_under_roots("sources/a.db", [root])
    with pytest.raises(UnsafeFile, match="outside the allowed folders"):
        resolve_under_roots(root / ".." / "outside.db", [root])


def test_a_symlink_leaving_the_root_is_refused(root, tmp_path):
    outside = _sqlite(tmp_path / "outside.db")
    os.symlink(outside, root / "escape.db")
    with pytest.raises(UnsafeFile, match=f"{root / 'escape.db'}: is a symlink leading to {outside}"):
        resolve_under_roots(root / "escape.db", [root])
    os.symlink("/etc", root / "etc")
    with pytest.raises(UnsafeFile, match="symlink"):
        resolve_under_roots(root / "etc" / "passwd", [root])


def test_the_apps_own_database_is_refused_even_inside_a_root(root):
    app_db = _sqlite(root / "mingus.sqlite3")
    (root / "mingus.sqlite3-wal").write_bytes(b"x")
    for p in (app_db, root / "mingus.sqlite3-wal"):
        with pytest.raises(UnsafeFile, match=f"{p}: is the app's own database"):
            resolve_under_roots(p, [root], forbidden=[app_db], what="source")


def test_a_root_may_be_a_single_file(tmp_path):
    spec = tmp_path / "app-spec.yaml"
    spec.write_text("name: x\n")
    other = tmp_path / "other.yaml"
    other.write_text("name: y\n")
    assert resolve_under_roots(spec, [spec]) == spec.resolve()
    with pytest.raises(UnsafeFile, match="outside"):
        resolve_under_roots(other, [spec])


def test_reads_are_bounded_in_size(root):
    f = root / "big.txt"
    f.write_bytes(b"a" * 2000)
    assert read_bytes(f, 2000) == b"a" * 2000
    with pytest.raises(UnsafeFile, match=f"{f}: is 2000 bytes, more than the 1999 allowed"):
        read_bytes(f, 1999)
    (root / "bin.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(UnsafeFile, match="is not utf-8 text"):
        read_text(root / "bin.txt", 100)


def test_a_missing_file_may_be_named_for_a_restore_when_its_folder_is_under_a_root(root, tmp_path):
    assert resolve_under_roots(root / "gone.db", [root], must_exist=False) == root.resolve() / "gone.db"
    with pytest.raises(UnsafeFile, match="no such file"):
        resolve_under_roots(root / "gone.db", [root])
    with pytest.raises(UnsafeFile, match="outside the allowed folders"):
        resolve_under_roots(tmp_path / "gone.db", [root], must_exist=False)
    os.symlink(tmp_path, root / "out")
    with pytest.raises(UnsafeFile, match="symlink"):
        resolve_under_roots(root / "out" / "gone.db", [root], must_exist=False)
    os.symlink(tmp_path / "nowhere.db", root / "dangling.db")
    with pytest.raises(UnsafeFile, match="no such file"):
        resolve_under_roots(root / "dangling.db", [root], must_exist=False)
