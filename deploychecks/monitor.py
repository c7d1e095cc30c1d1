"""Monitoring: periodic samples of the deployed app's health endpoint, the target database
(connect, SELECT 1) and its connection use, kept as history; uptime is computed from them. A
database sample that fails after a good one notifies the runbook's recipients (the database
connection failure alert).

Beat runs `deploychecks.monitor_due` every few seconds; a runbook is sampled when its
`monitor_interval_seconds` (0 = off) has passed since its last sample. Uptime is the share of
samples that passed in a window, which equals time-weighted uptime while the interval is steady.
"""
import logging
import time
from urllib.parse import urljoin

import psycopg
from django.db import transaction
from django.utils import timezone

from checklist.models import Runbook
from checklist.runbook_target import target_url
from checks import http_request
from checks.pg_target import explain_connect_error, target
from checks.redact import redact_url, scrub
from checks.report import CheckInputError

from . import triggers
from .criteria import uptime
from .models import MonitorSample, RunbookCheckSettings
from .notify import notify_database_down

log = logging.getLogger(__name__)

TIMEOUT = 5.0


def check_health(cs):
    """(ok, latency_ms, figures, detail) of one GET of the deployed URL's health path."""
    url = urljoin(cs.deployed_url, cs.health_path or "/healthz")
    try:
        answer = http_request.request(url, context=http_request.tls_context(cs.ca_file or None),
                                      timeout=TIMEOUT, max_body=65536,
                                      user_agent="mingus-deploy-monitor/1")
    except http_request.RequestFailed as exc:
        return False, None, {"status": None}, scrub(str(exc))[:300]
    ms = round(answer.elapsed_ms, 2)
    return answer.status == 200, ms, {"status": answer.status}, f"HTTP {answer.status}"


def check_database(url, cs):
    """[(kind, ok, latency_ms, figures, detail)] for the database and its connection use."""
    try:
        tgt = target(url, ca_file=cs.target_ca_file or None, connect_timeout=int(TIMEOUT))
    except CheckInputError as exc:
        return [(MonitorSample.DATABASE, False, None, {}, str(exc)[:300])]
    started = time.perf_counter()
    try:
        with psycopg.connect(tgt.conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
            ms = round((time.perf_counter() - started) * 1000, 2)
            used, limit = conn.execute(
                "SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity "
                "WHERE backend_type = 'client backend'").fetchone()
    except psycopg.Error as exc:
        return [(MonitorSample.DATABASE, False, None, {}, explain_connect_error(exc, tgt)[:300])]
    pct = round(used / limit * 100, 1) if limit else None
    return [
        (MonitorSample.DATABASE, True, ms, {"target": tgt.redacted}, "SELECT 1"),
        (MonitorSample.POOL, pct is not None and pct < cs.pool_utilization_pct, None,
         {"connections": used, "max_connections": limit, "utilization_pct": pct},
         f"{used} of {limit} connections in use"),
    ]


def sample(runbook, cs=None):
    """Take one round of samples for a runbook; returns the MonitorSample rows."""
    cs = cs or RunbookCheckSettings.for_runbook(runbook)
    found = []
    if cs.deployed_url:
        ok, ms, figures, detail = check_health(cs)
        figures["url"] = redact_url(urljoin(cs.deployed_url, cs.health_path or "/healthz"))
        found.append((MonitorSample.HEALTH, ok, ms, figures, detail))
    if hasattr(runbook, "target"):
        try:
            url = target_url(runbook)
        except ValueError as exc:
            found.append((MonitorSample.DATABASE, False, None, {}, str(exc)[:300]))
        else:
            found += check_database(url, cs)
    now = timezone.now()
    rows = [MonitorSample(runbook=runbook, kind=k, ok=ok, latency_ms=ms, figures=f,
                          detail=d[:500], taken_at=now) for k, ok, ms, f, d in found]
    before = (MonitorSample.objects.filter(runbook=runbook, kind=MonitorSample.DATABASE)
              .values_list("ok", flat=True).first())
    with transaction.atomic():
        MonitorSample.objects.bulk_create(rows)
        RunbookCheckSettings.objects.filter(pk=cs.pk).update(last_monitored_at=now)
    # The database connection failure alert: once, when a good database sample turns bad.
    failed = next((r for r in rows if r.kind == MonitorSample.DATABASE and not r.ok), None)
    if failed is not None and before:
        notify_database_down(runbook, failed)
    return rows


def due(now=None):
    """Settings of the runbooks whose monitoring interval has passed."""
    now = now or timezone.now()
    for cs in RunbookCheckSettings.objects.filter(monitor_interval_seconds__gt=0) \
            .select_related("runbook"):
        last = cs.last_monitored_at
        if last is None or (now - last).total_seconds() >= cs.monitor_interval_seconds:
            yield cs


def run_due():
    """Sample every due runbook, then evaluate rollback triggers of every runbook."""
    sampled = 0
    for cs in list(due()):
        try:
            sample(cs.runbook, cs)
            sampled += 1
        except Exception:  # one runbook's broken settings must not stop the others
            log.exception("monitoring runbook %s failed", cs.runbook_id)
    for runbook in Runbook.objects.all():
        try:
            triggers.evaluate(runbook)
        except Exception:
            log.exception("evaluating triggers of runbook %s failed", runbook.pk)
    return sampled


def monitoring_context(runbook):
    cs = RunbookCheckSettings.for_runbook(runbook)
    hours = cs.uptime_window_hours
    return {"runbook": runbook, "settings": cs,
            "uptime": {k: uptime(runbook, k, hours) for k in
                       (MonitorSample.HEALTH, MonitorSample.DATABASE, MonitorSample.POOL)},
            "recent": list(MonitorSample.objects.filter(runbook=runbook)[:15])}
