"""The seed's init_db.py, performance_test.py and e2e_tests.py ship as commands; a lead only
points the runbook at the MINGUS checkout."""
import pytest

from checklist import job_actions, jobs
from checklist.models import CommandSpec, ItemState
from tests.conftest import ended, wait_for_run

from .conftest import proof_settings

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_three_commands_ship_and_an_admin_row_replaces_one(db):
    assert {n: jobs.get_kind(f"command:{n}").title for n in CommandSpec.DEFAULTS} == {
        "init-db": "Run init-db", "performance-test": "Run performance-test",
        "e2e-tests": "Run e2e-tests"}
    assert CommandSpec.named("init-db").argv == ["python3", "init_db.py"]
    CommandSpec.objects.create(name="init-db", argv=["true"])
    assert CommandSpec.named("init-db").argv == ["true"]
    assert CommandSpec.named("nothing") is None


@pytest.mark.worker
def test_init_db_runs_in_the_repo_the_lead_set_and_fails_without_it(
        open_migration, users, worker, tmp_path):
    runbook = open_migration
    item = "`init_db.py` executed successfully"
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "command:init-db"), ended)
    assert run.state == "failed" and "exited with code 2" in run.error  # no init_db.py there
    assert not ItemState.objects.get(runbook=runbook, item__text=item).checked
    repo = tmp_path / "mingus"
    repo.mkdir()
    (repo / "init_db.py").write_text("import os\nprint('tables created in', os.getcwd())\n")
    proof_settings(runbook, repo_path=str(repo))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "command:init-db"), ended)
    assert run.state == "succeeded", run.error + run.log
    assert f"tables created in {repo}" in run.log
    assert ItemState.objects.get(runbook=runbook, item__text=item).earned_run_id == run.pk
