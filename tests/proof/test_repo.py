"""The repo job: the MINGUS checkout, read with git, earns the scripts, configuration and
documentation items one by one; a dirty tree or a missing document earns nothing for it."""
import subprocess

import pytest

from checklist import job_actions
from checklist.models import ItemState
from tests.conftest import ended, wait_for_run

from .conftest import open_through, proof_settings

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = "# Rollback\n\n" + "Restore the SQLite files from the backup manifest, then ... \n" * 8


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c",
                    "user.name=t", *args], check=True, capture_output=True)


def mingus_repo(path):
    path.mkdir()
    git(path, "init", "-q")
    for name, text in {"production_migration.py": "print('migrate')\n",
                       "config/production.py": "DEBUG = False\n",
                       "docs/rollback.md": GUIDE, "docs/migration.md": "# TODO\n"}.items():
        (path / name).parent.mkdir(exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "scripts and docs")
    return path


def state(runbook, text):
    return ItemState.objects.get(runbook=runbook, item__text=text)


@pytest.mark.worker
def test_repo_job_earns_what_the_checkout_proves_on_a_worker(runbook, users, worker, tmp_path):
    open_through(runbook, users, 2)  # Deployment open; Documentation (Post-Deployment) locked
    repo = mingus_repo(tmp_path / "mingus")
    proof_settings(runbook, repo_path=str(repo), repo_scripts=["production_migration.py"],
                   repo_config_files=["config/production.py"], docs_map={
                       "Rollback procedures documented": {"path": "docs/rollback.md",
                                                          "must_contain": ["backup manifest"]},
                       "Migration process documented": "docs/migration.md"})
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "repo"), ended)
    assert run.state == "failed" and "3 of 4 items proven" in run.error  # migration.md is a stub
    for text in ("All migration scripts committed to repository", "Configuration files updated"):
        assert state(runbook, text).earned_run_id == run.pk, text
    assert "a stub" in run.log
    verdicts = run.evidence.get(kind="figures").run.log
    assert "ok   Rollback procedures documented: docs/rollback.md in" in verdicts
    assert "FAIL Migration process documented: docs/migration.md has" in verdicts
    assert not state(runbook, "Rollback procedures documented").checked  # its phase is locked
    # An uncommitted edit: the scripts and configuration are no longer proven, and withdrawn.
    (repo / "config" / "production.py").write_text("DEBUG = True\n")
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "repo"), ended)
    assert run.state == "failed" and "uncommitted changes" in run.log
    assert not state(runbook, "Configuration files updated").checked
    assert not state(runbook, "All migration scripts committed to repository").checked


@pytest.mark.worker
def test_repo_job_refuses_a_folder_that_is_not_a_repository(runbook, users, worker, tmp_path):
    open_through(runbook, users, 2)
    proof_settings(runbook, repo_path=str(tmp_path), repo_scripts=["production_migration.py"])
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "repo"), ended)
    assert run.state == "failed" and "not a git repository" in run.error.lower()
    proof_settings(runbook, repo_path=str(tmp_path / "nowhere"))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "repo"), ended)
    assert run.state == "failed" and "no such repository folder" in run.error
