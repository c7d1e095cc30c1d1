"""Issue 14 part 3: the monitoring job earns the Monitoring and Alert Configuration items from
what the app measures (the monitor's samples, the triggers' evidence) and a test alert delivered
to a receiver on loopback; and the monitor alerts when the database becomes unreachable."""
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from checklist import job_actions
from checklist.models import ItemState, TaskRun
from checklist.job_context import JobContext, JobResult
from checklist.runner import finish
from deploychecks import monitor
from deploychecks.models import (MonitorSample, Notification, PerformanceBaseline,
                                 RunbookCheckSettings)
from deploychecks.proof_jobs import MONITORING_ITEMS
from tests.conftest import ended, wait_for_run
from tests.deploychecks.test_notify import HOOK_TOKEN, WebhookReceiver

from .conftest import open_through

pytestmark = pytest.mark.django_db(transaction=True)


def fake_report(runbook, user, kind, figures):
    """A run of `kind` with a report and figures, as the job layer stores them."""
    run = TaskRun.objects.create(runbook=runbook, kind=kind, started_by=user,
                                 state=TaskRun.RUNNING)
    finish(run, JobContext(run, {}), JobResult(ok=True, summary="measured", figures=figures,
                                               report={"name": kind, "ok": True,
                                                       "figures": figures, "criteria": []}),
           TaskRun.SUCCEEDED)
    return run


def samples(runbook, kind, count, ok=True, every=60, latency=4.2):
    now = timezone.now()
    MonitorSample.objects.bulk_create([
        MonitorSample(runbook=runbook, kind=kind, ok=ok, latency_ms=latency,
                      detail="HTTP 200" if kind == "health" else "ok",
                      taken_at=now - timedelta(seconds=every * n)) for n in range(count)])


@pytest.fixture
def receiver():
    hook = WebhookReceiver()
    yield hook
    hook.close()


def earned(runbook, run):
    return {text for text in MONITORING_ITEMS.values()
            if ItemState.objects.get(runbook=runbook, item__key=text).earned_run_id == run.pk}


def ticked(runbook, runs):
    """The monitoring items ticked, each earned by one of `runs`."""
    return {text for text in MONITORING_ITEMS.values()
            if ItemState.objects.filter(runbook=runbook, item__key=text, checked=True,
                                        earned_run_id__in=[r.pk for r in runs]).exists()}


@pytest.mark.worker
def test_monitoring_items_are_earned_from_samples_triggers_and_a_delivered_alert(
        runbook, users, worker, receiver):
    open_through(runbook, users, 3)  # Post-Deployment opens
    cs = RunbookCheckSettings.objects.create(runbook=runbook, monitor_interval_seconds=0)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "monitoring"), ended)
    assert run.state == "failed" and earned(runbook, run) == set()
    assert "monitoring is off" in run.log and "no alert channel" in run.log

    cs.monitor_interval_seconds = 60
    cs.set_webhook_url(receiver.url)
    cs.save()
    samples(runbook, "health", 5)
    samples(runbook, "database", 5)
    samples(runbook, "pool", 5)
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "monitoring"), ended)
    # Samples and a delivered alert, but no trigger evidence and no baseline yet.
    assert run.state == "failed"
    assert earned(runbook, run) == {
        "application-health-checks-configured", "uptime-monitoring-active",
        "connection-pool-monitoring-active", "error-logging-and-alerting-enabled",
        "database-connection-failure-alerts"}
    body = next(b for b in receiver.bodies() if b["event"] == "monitoring-test")
    assert body["data"] == {"run_id": run.pk}
    assert HOOK_TOKEN not in run.log

    perf = fake_report(runbook, users["lead"], "check-performance",
                       {"queries": 3, "p95_ms": 12.0})
    assert PerformanceBaseline.objects.get(runbook=runbook).run_id == perf.pk  # the first run
    fake_report(runbook, users["lead"], "check-http", {"error_rate_pct": 0.0, "requests": 100,
                                                      "errors": 0})
    first = run
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "monitoring"), ended)
    assert run.state == "succeeded", run.error + run.log
    assert ticked(runbook, [first, run]) == set(MONITORING_ITEMS.values())
    assert earned(runbook, run) >= {"performance-metrics-tracking", "high-query-response-time-alerts", "application-error-rate-alerts",
                                    "error-rate-monitoring-configured"}

    # The monitor stops: the samples grow old, and the sampling items are withdrawn.
    MonitorSample.objects.update(taken_at=timezone.now() - timedelta(hours=1))
    run = wait_for_run(job_actions.start_job(users["member"], runbook, "monitoring"), ended)
    assert run.state == "failed" and "minutes old: the monitor is not running" in run.log
    assert not ItemState.objects.get(runbook=runbook,
                                     item__key="uptime-monitoring-active").checked


@override_settings(DEPLOYCHECKS_NOTIFY_INLINE=True, DEPLOYCHECKS_NOTIFY_ATTEMPTS=1)
def test_the_monitor_alerts_once_when_the_database_becomes_unreachable(runbook, users,
                                                                       receiver):
    from checklist import actions

    actions.set_target(users["lead"], runbook, "postgres://app:pw-x@127.0.0.1:1/app")
    cs = RunbookCheckSettings.objects.create(runbook=runbook, monitor_interval_seconds=60)
    cs.set_webhook_url(receiver.url)
    cs.save()
    runbook.refresh_from_db()
    monitor.sample(runbook, cs)  # never reachable: no earlier good sample, no alert
    assert not Notification.objects.filter(event="database-unreachable").exists()
    samples(runbook, "database", 1)  # a good sample, then the database goes away
    monitor.sample(runbook, cs)
    monitor.sample(runbook, cs)
    sent = Notification.objects.get(event="database-unreachable")
    assert sent.state == "sent"
    assert [b["event"] for b in receiver.bodies()] == ["database-unreachable"]
    assert "pw-x" not in repr(receiver.bodies())
