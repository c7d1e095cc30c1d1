"""rollback-triggers ticks the Critical Issue whose trigger fired (and withdraws it when newer
evidence clears it); announce mails the maintenance window to the emergency contacts and keeps
the delivered message."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from checklist import actions, job_actions
from migration.hashing import file_sha256
from checklist.models import ContactValue, ItemState
from tests.conftest import ended, wait_for_run
from tests.deploychecks.test_deploy_jobs import fake_validate
from tests.worker import start_worker

from .conftest import open_through, proof_settings

pytestmark = pytest.mark.django_db(transaction=True)

CORRUPTION = "Data corruption detected"


def state(runbook, text):
    return ItemState.objects.get(runbook=runbook, item__text=text)


@pytest.mark.worker
def test_rollback_triggers_tick_the_issue_that_fired_on_a_worker(runbook, users, worker):
    open_through(runbook, users, 2)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "rollback-triggers"), ended)
    assert run.state == "failed" and "No trigger has evidence" in run.error
    fake_validate(runbook, users["lead"], False, rows_checked=1000, mismatches=3, missing_rows=0,
                  rejected=0)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "rollback-triggers"), ended)
    assert run.state == "succeeded", run.error + run.log
    st = state(runbook, CORRUPTION)
    assert st.earned_run_id == run.pk and "3 mismatched" in run.log
    assert not state(runbook, "Security vulnerabilities found").checked  # no evidence
    # A clean validation clears the trigger: the issue is no longer detected.
    fake_validate(runbook, users["lead"], True, rows_checked=1000, mismatches=0, missing_rows=0,
                  rejected=0)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "rollback-triggers"), ended)
    assert not state(runbook, CORRUPTION).checked


@pytest.fixture
def mail_worker(transactional_db, tmp_path):
    outbox = tmp_path / "outbox"
    w = start_worker(extra_env={"EMAIL_URL": f"filemail:///{outbox}"})
    yield w, outbox
    w.stop()


@pytest.mark.worker
def test_announce_mails_the_window_to_the_contacts_on_a_worker(runbook, users, mail_worker):
    worker, outbox = mail_worker
    open_through(runbook, users, 1)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "announce"), ended)
    assert run.state == "failed" and "No maintenance window" in run.error
    start = timezone.now() + timedelta(days=2)
    proof_settings(runbook, window_start=start, window_end=start - timedelta(hours=1))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "announce"), ended)
    assert run.state == "failed" and "ends before it starts" in run.error
    proof_settings(runbook, window_end=start + timedelta(hours=2), announce_note="Read-only.")
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "announce"), ended)
    assert run.state == "failed" and "No emergency contact" in run.error
    fields = list(ContactValue.objects.filter(runbook=runbook).select_related("field"))
    actions.set_contact(users["lead"], runbook, fields[0].field, "Ana - +1 555 0100 / ana@mingus.example")
    actions.set_contact(users["lead"], runbook, fields[2].field, "DB: db@mingus.example")
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "announce"), ended)
    assert run.state == "succeeded", run.error + run.log
    sent = "".join(p.read_text() for p in outbox.iterdir())
    assert "To: ana@mingus.example, db@mingus.example" in sent and "(2 hours)" in sent
    kept = run.evidence.get(name=f"announcement-run{run.pk}.eml")
    path = settings.MEDIA_ROOT / kept.path
    assert "Read-only." in path.read_text() and file_sha256(path) == kept.sha256
    for text in ("Maintenance window scheduled", "Application downtime communicated"):
        assert state(runbook, text).earned_run_id == run.pk
