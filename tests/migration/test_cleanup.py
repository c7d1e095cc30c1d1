"""Cleanup archives the sources and records, proves the archive, and deletes a source only
when its archived copy verified."""
import hashlib
import json
import stat
import tarfile
import threading
from pathlib import Path

from migration import steps
from migration.cleanup import cleanup_step

from .conftest import copy_fixtures


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_cleanup_archives_verifies_and_removes_sources_when_asked(tmp_path):
    sources = copy_fixtures(tmp_path / "src", {"alerts": "alerts.db", "cache": "cache.db"})
    work = tmp_path / "work"
    steps.backup(sources, work)
    digests = {name: sha(p) for name, p in sources.items()}
    rep = steps.cleanup(sources, work, remove_sources=True)
    assert rep.ok, rep.problems
    assert not any(p.exists() for p in sources.values())
    assert not (work / "tmp").exists()
    archive = Path(rep.archive)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600 and sha(archive) == rep.archive_sha256
    manifest = json.loads(Path(rep.archive_manifest).read_text())
    assert manifest["sha256"] == rep.archive_sha256
    with tarfile.open(archive) as tar:
        for name, digest in digests.items():
            member = tar.extractfile(f"sources/{name}/{sources[name].name}")
            assert hashlib.sha256(member.read()).hexdigest() == digest
        assert any(n.startswith("records/reports/backup-") for n in tar.getnames())


def test_cleanup_keeps_sources_by_default(tmp_path):
    sources = copy_fixtures(tmp_path / "src", {"cache": "cache.db"})
    rep = steps.cleanup(sources, tmp_path / "work")
    assert rep.ok and sources["cache"].exists() and rep.kept == [str(sources["cache"])]


def test_a_source_that_changed_after_archiving_is_not_deleted(tmp_path, monkeypatch):
    sources = copy_fixtures(tmp_path / "src", {"alerts": "alerts.db"})
    original = tarfile.TarFile.add

    def add_then_write(self, name, *args, **kwargs):  # the application writes while we archive
        original(self, name, *args, **kwargs)
        if name.endswith("alerts.db"):
            with open(name, "ab") as fh:
                fh.write(b"\x00" * 10)

    monkeypatch.setattr(tarfile.TarFile, "add", add_then_write)
    rep = cleanup_step(sources, tmp_path / "work", remove_sources=True)
    assert sources["alerts"].exists()
    assert any("not removed" in p for p in rep.problems) and not rep.ok


def test_progress_events_arrive_on_the_calling_thread(tmp_path):
    sources = copy_fixtures(tmp_path / "src", {"alerts": "alerts.db", "cache": "cache.db"})
    threads, kinds = set(), []

    def progress(event):
        threads.add(threading.get_ident())
        kinds.append(event.kind)

    steps.backup(sources, tmp_path / "work", progress=progress)
    assert threads == {threading.get_ident()}
    assert kinds[0] == "start" and kinds.count("table") == 2 and kinds[-1] == "finish"
