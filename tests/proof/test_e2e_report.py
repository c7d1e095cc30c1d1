"""The e2e-report job: a JUnit report earns Feature, User Journey and Security Testing items test
by test through the lead's mapping; bad reports and mappings are refused in plain words."""
import pytest

from checklist import job_actions
from checklist.models import ItemState
from checks import junit
from checks.report import CheckInputError
from tests.conftest import ended, wait_for_run

from .conftest import proof_settings

pytestmark = pytest.mark.django_db(transaction=True)

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="e2e" tests="5" failures="{failures}">
 <testcase classname="e2e.test_auth" name="test_register_and_login" time="1.2"/>
 <testcase classname="e2e.test_auth" name="test_login_returning_user" time="0.4"/>
 <testcase classname="e2e.test_money" name="test_add_income" time="0.8">{money}</testcase>
 <testcase classname="e2e.test_money" name="test_budget" time="0.3"/>
 <testcase classname="e2e.test_admin" name="test_member_cannot_reach_admin" time="0.2"/>
</testsuite></testsuites>
"""
MAPPING = {
    "User registration/login working": ["e2e.test_auth."],
    "Returning user login tested": ["e2e.test_auth.test_login_returning_user"],
    "Financial data operations functional": ["e2e.test_money."],
    "Authorization rules enforced": ["e2e.test_admin.test_member_cannot_reach_admin"],
    "Dashboard functionality verified": ["e2e.test_dashboard."],
}


def state(runbook, text):
    return ItemState.objects.get(runbook=runbook, item__text=text)


def test_judge_needs_every_matching_test_to_pass(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(REPORT.format(failures=1, money='<failure message="500 on /income"/>'))
    judged = junit.judge(junit.parse(path), MAPPING)
    assert judged["User registration/login working"]["ok"] is True
    assert judged["Financial data operations functional"]["ok"] is False
    assert "500 on /income" not in judged["Financial data operations functional"]["reason"]
    assert "test_add_income failed" in judged["Financial data operations functional"]["reason"]
    assert judged["Dashboard functionality verified"] == {
        "ok": False, "reason": "no test matches e2e.test_dashboard.", "tests": []}
    path.write_text("<html><body>not a report</body></html>")
    with pytest.raises(CheckInputError, match="not a JUnit report"):
        junit.parse(path)


@pytest.mark.worker
def test_e2e_report_earns_items_test_by_test_on_a_worker(open_deployment, users, worker,
                                                         tmp_path):
    runbook = open_deployment
    report = tmp_path / "e2e.xml"
    report.write_text(REPORT.format(failures=1, money='<failure message="500"/>'))
    proof_settings(runbook, junit_path=str(report), test_map=MAPPING)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "e2e-report"), ended)
    assert run.state == "failed" and "3 of 5 items proven" in run.error
    assert state(runbook, "User registration/login working").earned_run_id == run.pk
    assert state(runbook, "Authorization rules enforced").earned_run_id == run.pk
    assert not state(runbook, "Financial data operations functional").checked
    assert not state(runbook, "Dashboard functionality verified").checked
    assert not state(runbook, "New user registration flow tested").checked  # not mapped
    assert {e.name for e in run.evidence.all()} >= {"e2e.xml", "e2e-report-report.json"}
    # The team fixes the bug: the next report earns the item, the earlier ones stay earned.
    report.write_text(REPORT.format(failures=0, money=""))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "e2e-report"), ended)
    assert state(runbook, "Financial data operations functional").earned_run_id == run.pk
    assert state(runbook, "User registration/login working").checked


@pytest.mark.worker
def test_e2e_report_refuses_a_bad_report_or_mapping(open_deployment, users, worker, tmp_path):
    runbook = open_deployment
    report = tmp_path / "e2e.xml"
    report.write_text("<testsuites><testsuite><testcase name='x'")
    proof_settings(runbook, junit_path=str(report), test_map=MAPPING)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "e2e-report"), ended)
    assert run.state == "failed" and "is not XML" in run.error
    proof_settings(runbook, test_map={"Backup restoration tested": ["x"]})
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "e2e-report"), ended)
    assert run.state == "failed" and "does not earn" in run.error
    proof_settings(runbook, junit_path="/etc/passwd", test_map=MAPPING)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "e2e-report"), ended)
    assert run.state == "failed" and "/etc/passwd" in run.error
    assert not ItemState.objects.filter(runbook=runbook, earned_run__isnull=False).exists()
