"""The proof jobs of issue 14: jobs that earn most of the checklist by doing the real work.

Every kind here reads its configuration from the runbook's proof settings, saved by a lead
(`RunbookProofSettings`); a run's parameters are ignored, so no member can point a job at other
SQL, paths, hosts or ids. Kinds that prove several items earn them one by one
(JobResult.item_outcomes): an item passes on its own evidence, and an item the settings do not
cover is left as it is.

    e2e-report   the JUnit XML report of the team's end-to-end tests, item by item through the
                 lead's mapping (Feature, User Journey and Security Testing ...)
    repo         the MINGUS checkout: clean and at the deployed commit, scripts and configuration
                 committed, the documents the Documentation items name present and complete
"""
import logging
import re
import time
from datetime import timedelta
from email.utils import format_datetime

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from checklist.job_context import JobInputError, JobResult
from checklist.jobs import JobKind, items_by_part, register
from checklist.params import LEAD
from checks import appdb, digitalocean, junit, repo
from checks.report import CheckInputError

from . import notify, triggers
from .models import (MonitorSample, PerformanceBaseline, RunbookCheckSettings,
                     RunbookProofSettings)

log = logging.getLogger(__name__)


def settings_of(ctx):
    return RunbookProofSettings.of(ctx.runbook)


def bound_items(ctx):
    """name -> Item for the items this run earns, each by its key and by its words (a lead's
    test or documents map may name an item either way; the code names them by key)."""
    out = {}
    for item in ctx.run.items.all():
        out[item.text] = item
        if item.key:
            out[item.key] = item
    return out


def judged_result(ctx, name, judged, report, figures=None, artifacts=()):
    """A JobResult that earns each judged item on its own outcome (item -> {ok, reason}, an item
    named by its key or its words): outcomes go by the item's key, the report by its words."""
    items = bound_items(ctx)
    ref = {n: (items[n].key or items[n].text) if n in items else n for n in judged}
    judged = {(items[n].text if n in items else n): v for n, v in judged.items()}
    ref = {(items[n].text if n in items else n): r for n, r in ref.items()}
    for item, verdict in judged.items():
        ctx.log(f"{'ok  ' if verdict['ok'] else 'FAIL'} {item}: {verdict['reason']}")
    passed = sorted(i for i, v in judged.items() if v["ok"])
    failed = sorted(i for i, v in judged.items() if not v["ok"])
    ok = bool(judged) and not failed
    summary = f"{name}: {len(passed)} of {len(judged)} items proven"
    if failed:
        summary += f" (not: {', '.join(failed[:4])}{' ...' if len(failed) > 4 else ''})"
    report = {"name": name, "ok": ok, **report,
              "items": {i: {k: v for k, v in verdict.items()} for i, verdict in judged.items()}}
    figures = {"items_proven": len(passed), "items_failed": len(failed), **(figures or {})}
    return JobResult(ok=ok, summary=summary, report=report, figures=figures,
                     error="" if ok else summary, artifacts=list(artifacts),
                     item_outcomes={ref[i]: v["ok"] for i, v in judged.items()},
                     item_notes={ref[i]: v["reason"][:300] for i, v in judged.items()})


def _unknown_items(ctx, mapping, what):
    unknown = sorted(set(mapping) - set(bound_items(ctx)))
    if unknown:
        raise JobInputError(f"The {what} names items this job does not earn on this runbook: "
                            f"{', '.join(repr(u) for u in unknown[:5])}.")


# --- e2e-report ---------------------------------------------------------------------------------

def e2e_report(ctx):
    ps = settings_of(ctx)
    if not ps.junit_path:
        raise JobInputError("No JUnit report is set: a lead sets its path in the proof settings.")
    if not isinstance(ps.test_map, dict) or not ps.test_map:
        raise JobInputError("No test mapping is set: a lead maps items to the tests that prove "
                            "them in the proof settings.")
    _unknown_items(ctx, ps.test_map, "test mapping")
    path = ctx.checked_file(ps.junit_path)
    ctx.progress(step="reading the JUnit report", percent=20)
    try:
        cases = junit.parse(path)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    counts = {o: sum(1 for c in cases if c.outcome == o)
              for o in ("passed", "failed", "error", "skipped")}
    ctx.log(f"{len(cases)} tests in {path.name}: " + ", ".join(f"{v} {k}" for k, v in
                                                               counts.items()))
    judged = junit.judge(cases, ps.test_map)
    return judged_result(ctx, "e2e-report", judged, {"report_file": path.name, "counts": counts},
                         figures={"tests": len(cases), **counts}, artifacts=[path])


# --- repo ---------------------------------------------------------------------------------------

SCRIPTS_ITEM = "all-migration-scripts-committed-to-repository"  # item keys
CONFIG_ITEM = "configuration-files-updated"


def repo_check(ctx):
    ps = settings_of(ctx)
    docs = ps.docs_map if isinstance(ps.docs_map, dict) else {}
    _unknown_items(ctx, docs, "documents map")
    try:
        st = repo.state(ps.repo_path, ps.repo_commit)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    commit = st["commit"]
    ctx.log(f"repository at {st['head'][:12]} ({st['subject']}); deployed commit {commit[:12]}; "
            f"{len(st['dirty'])} uncommitted change(s)")
    tree_problem = ("" if st["at_commit"] else f"the checkout is at {st['head'][:12]}, not at the "
                    f"deployed commit {commit[:12]}") or (
        f"uncommitted changes: {', '.join(st['dirty'][:5])}" if st["dirty"] else "")
    judged = {}
    bound = bound_items(ctx)
    for item, paths in ((SCRIPTS_ITEM, ps.repo_scripts), (CONFIG_ITEM, ps.repo_config_files)):
        if item not in bound or not paths:
            continue
        found = repo.committed(ps.repo_path, commit, paths)
        missing = [p for p, ok in found.items() if not ok]
        reason = (tree_problem or (f"not committed (or changed): {', '.join(missing)}" if missing
                                   else f"{len(paths)} file(s) committed in {commit[:12]}"))
        judged[item] = {"ok": not tree_problem and not missing, "reason": reason,
                        "files": found}
    for item, spec in docs.items():
        spec = {"path": spec} if isinstance(spec, str) else dict(spec or {})
        if not spec.get("path"):
            raise JobInputError(f"The documents map gives no path for {item!r}.")
        ok, reason = repo.document(ps.repo_path, commit, spec["path"],
                                   spec.get("must_contain") or ())
        judged[item] = {"ok": ok, "reason": reason, "path": spec["path"]}
    if not judged:
        raise JobInputError("Nothing to check: a lead lists the scripts, configuration files or "
                            "documents in the proof settings.")
    return judged_result(ctx, "repo", judged, {"head": st["head"], "commit": commit,
                                                "dirty": st["dirty"]},
                         figures={"commit": commit, "uncommitted": len(st["dirty"])})


# --- rollback-triggers ----------------------------------------------------------------------------

def rollback_triggers(ctx):
    """Each Critical Issue item is earned when its trigger fires on the latest evidence and
    withdrawn when newer evidence clears it; a trigger without evidence leaves its item alone.
    The run fails when no trigger has evidence at all (nothing was evaluated)."""

    cs = RunbookCheckSettings.objects.filter(runbook=ctx.runbook).first() or \
        RunbookCheckSettings(runbook=ctx.runbook)
    outcomes, notes, rows = {}, {}, {}
    # Each Critical Issue item is bound to its trigger as the binding's part.
    by_part = {part: item.text for part, item in items_by_part(ctx.runbook, ctx.run.kind).items()}
    for name, check in triggers.CHECKS.items():
        found = check(ctx.runbook, cs)
        item = by_part.get(name)
        if found is None:
            ctx.log(f"no evidence  {name}")
            rows[name] = {"fired": None, "item": item}
            continue
        fired, figures, evidence, summary = found
        ctx.log(f"{'FIRED' if fired else 'clear'}  {name}: {summary}")
        rows[name] = {"fired": bool(fired), "item": item, "summary": summary,
                      "figures": figures, "evidence": evidence or {}}
        outcomes[name] = bool(fired)  # by trigger: the part its item is bound to
        cite = evidence or {}
        notes[name] = (f"{summary[:200]}; evidence run #{cite.get('run_id')} "
                       f"{cite.get('name', '')} sha256 {str(cite.get('sha256', ''))[:16]}")
    fired = [n for n, r in rows.items() if r["fired"]]
    evaluated = [n for n, r in rows.items() if r["fired"] is not None]
    summary = (f"{len(evaluated)} of {len(rows)} triggers evaluated; fired: "
               f"{', '.join(fired) or 'none'}")
    ok = bool(evaluated)
    return JobResult(ok=ok, summary=summary, error="" if ok else
                     "No trigger has evidence yet (validate, check-performance, check-http).",
                     report={"name": "rollback-triggers", "ok": ok, "triggers": rows},
                     figures={"evaluated": len(evaluated), "fired": len(fired)},
                     item_outcomes=outcomes, item_notes=notes)


# --- announce ------------------------------------------------------------------------------------

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def recipients(runbook):
    """The addresses written in the runbook's emergency contacts (each contact once)."""
    found = []
    for value in runbook.contact_values.order_by("field__order", "pk").values_list("value",
                                                                                  flat=True):
        for match in EMAIL.finditer(value or ""):
            if match.group(0).lower() not in (f.lower() for f in found):
                found.append(match.group(0))
    return found


def announce(ctx):

    ps = settings_of(ctx)
    if not ps.window_start or not ps.window_end:
        raise JobInputError("No maintenance window is set: a lead sets its start and end in the "
                            "proof settings.")
    if ps.window_end <= ps.window_start:
        raise JobInputError("The maintenance window ends before it starts.")
    to = recipients(ctx.runbook)
    if not to:
        raise JobInputError("No emergency contact holds an email address: fill in the "
                            "runbook's contacts first.")
    hours = (ps.window_end - ps.window_start).total_seconds() / 3600
    local = timezone.localtime
    subject = (f"Maintenance window for {ctx.runbook.name}: "
               f"{local(ps.window_start):%Y-%m-%d %H:%M} to {local(ps.window_end):%H:%M %Z}")
    body = "\n".join([
        f"The application will be down for maintenance (the SQLite to PostgreSQL migration).",
        "",
        f"Window:   {format_datetime(ps.window_start)}",
        f"Until:    {format_datetime(ps.window_end)}  ({hours:g} hours)",
        "",
        ps.announce_note.strip(),
        "",
        f"Sent by mingus-deploy for runbook #{ctx.runbook.pk} ({ctx.runbook.name}).",
    ]).strip() + "\n"
    message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    ctx.progress(step=f"mailing {len(to)} contact(s)", percent=40)
    sent = message.send(fail_silently=False)  # an SMTP error fails the run, in plain words
    if sent != 1:
        return JobResult(ok=False, error="The mail backend accepted no message.")
    path = ctx.workdir / f"announcement-run{ctx.run.pk}.eml"
    path.write_bytes(message.message().as_bytes())
    ctx.log(f"announced to {', '.join(to)}: {subject}")
    return JobResult(ok=True, summary=f"announced to {len(to)} contact(s): {subject}",
                     report={"name": "announce", "ok": True, "to": to, "subject": subject,
                             "window_start": ps.window_start.isoformat(),
                             "window_end": ps.window_end.isoformat()},
                     figures={"recipients": len(to), "window_hours": hours},
                     artifacts=[path])


# --- app-database ---------------------------------------------------------------------------------

APPDB_ITEMS = {  # what appdb.inspect found -> the keys of the items it proves
    "tables": ["all-tables-created-without-errors"],
    "seed": ["default-data-seeded-correctly"],
    "statements": ["query-performance-tracking-enabled", "postgresql-performance-monitoring-enabled"],
    "sessions": ["application-connects-to-postgresql-successfully"],
    "writes": ["all-database-operations-working"],
}


def app_database(ctx):

    ps = settings_of(ctx)
    cs = RunbookCheckSettings.objects.filter(runbook=ctx.runbook).first()
    tables = [str(t) for t in ps.app_tables] if isinstance(ps.app_tables, list) else []
    seed = ps.app_seed_rows if isinstance(ps.app_seed_rows, dict) else {}
    ctx.progress(step="reading the app's database", percent=20)
    try:
        found = appdb.inspect(ctx.target_url(), tables=tables, seed_rows=seed,
                              app_user=ps.app_db_user, ca_file=cs.target_ca_file if cs else None)
    except (CheckInputError, ValueError) as exc:
        raise JobInputError(str(exc)) from None
    bound = bound_items(ctx)
    judged = {item: {"ok": bool(v["ok"]), "reason": v["reason"]}
              for key, v in found.items() for item in APPDB_ITEMS[key] if item in bound}
    return judged_result(ctx, "app-database", judged, {"checks": found},
                         figures={k: v["ok"] for k, v in found.items()})


# --- DigitalOcean ---------------------------------------------------------------------------------

DO_DATABASE_ITEMS = {"provisioned": "postgresql-database-provisioned",  # item keys
                     "plan": "database-plan-selected-starter-professional"}


def do_database(ctx):
    ps = settings_of(ctx)
    try:
        do = _do_client(ctx, ps)
        ctx.progress(step="reading the database cluster", percent=30)
        found = digitalocean.database(do, ps.do_database_id, ps.do_min_pg_version)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    judged = {DO_DATABASE_ITEMS[k]: v for k, v in found.items()}
    return judged_result(ctx, "do-database", judged, {"cluster": ps.do_database_id},
                         figures={"version": found["provisioned"].get("version"),
                                  "size": found["plan"]["size"]})


def _do_client(ctx, ps):
    token = ps.do_token()
    ctx._secrets.append(token)  # never in the log or the evidence, whatever pydo says
    return digitalocean.client(token, ps.do_api_endpoint)


DO_APP_ITEMS = {"env": "environment-variables-configured-in-do",
                "size": "app-instance-size-selected-basic-pro"}


def do_app(ctx):
    """The app spec DigitalOcean runs, against the app-spec.yaml the check-app-spec job checked
    (the lead's `app_spec_path`)."""
    from checks import secret_values, spec_file

    ps = settings_of(ctx)
    spec_path = RunbookCheckSettings.for_runbook(ctx.runbook).app_spec_path
    if not spec_path:
        raise JobInputError("No app-spec.yaml is set: a lead sets its path in the check "
                            "settings.")
    try:
        checked = spec_file.load_spec(ctx.checked_file(spec_path)).data
        if not isinstance(checked, dict):
            raise CheckInputError(f"{spec_path} is not an app spec (a YAML mapping)")
        do = _do_client(ctx, ps)
        ctx.progress(step="reading the app", percent=30)
        found = digitalocean.app_settings(digitalocean.app(do, ps.do_app_id), checked,
                                          secret_values.looks_secret)
    except (CheckInputError, spec_file.SpecSyntaxError) as exc:
        raise JobInputError(str(exc)) from None
    for key in ("env", "size"):
        for problem in found[key]["problems"]:
            ctx.log(f"  {problem}")
    judged = {DO_APP_ITEMS[k]: {kk: vv for kk, vv in v.items() if kk != "problems"}
              for k, v in found.items()}
    return judged_result(ctx, "do-app", judged, {"app": ps.do_app_id, "checked": spec_path,
                                                 "problems": {k: v["problems"] for k, v in
                                                              found.items()}},
                         figures={"env_keys": found["env"]["keys"],
                                  "secrets": found["env"]["secrets"]})


def _sleeper(ctx):
    def sleep(seconds):
        ctx.check_cancel()  # a cancel stops following; the deployment itself goes on in DO
        time.sleep(seconds)

    return sleep, settings.DO_POLL_SECONDS


def _follow_and_keep_logs(ctx, do, ps, deployment, name):
    """Follow `deployment` to its end, keep its build and deploy logs as evidence; a JobResult
    that passes only when it is ACTIVE."""
    sleep, poll = _sleeper(ctx)
    dep_id = deployment.get("id")
    ctx.log(f"{name}: deployment {dep_id} ({deployment.get('cause') or 'no cause given'})")

    def on_phase(phase, _):
        ctx.log(f"phase {phase}")
        ctx.progress(step=f"deployment {phase}", percent=50)

    try:
        ended = digitalocean.follow(do, ps.do_app_id, dep_id, timeout=ps.do_deploy_timeout_seconds,
                                    poll=poll, sleep=sleep, on_phase=on_phase)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    verdict = digitalocean.judge_deployment(ended, ps.do_deploy_timeout_seconds)
    ctx.progress(step="keeping the deployment logs", percent=90)
    try:
        texts = digitalocean.logs(do, ps.do_app_id, dep_id)
    except CheckInputError as exc:
        # The deployment's own outcome still stands; without its logs the run cannot pass.
        texts = {}
        verdict = {**verdict, "ok": False, "reason": f"{verdict['reason']}; {exc}"}
    path = ctx.workdir / f"{name}-{dep_id}-run{ctx.run.pk}.log"
    path.write_text(ctx.redact("".join(f"===== {kind} logs of deployment {dep_id} =====\n{text}"
                                       f"\n" for kind, text in texts.items())), encoding="utf-8")
    lines = {k: len(v.splitlines()) for k, v in texts.items()}
    ctx.log(f"{verdict['reason']}; logs kept: {lines.get('BUILD', 0)} build and "
            f"{lines.get('DEPLOY', 0)} deploy lines")
    report = {"name": name, "ok": verdict["ok"], "deployment": dep_id, "phase": verdict["phase"],
              "cause": ended.get("cause"), "errors": digitalocean._step_errors(ended),
              "timed_out": ended.get("timed_out", False), "log_lines": lines}
    return JobResult(ok=verdict["ok"], summary=verdict["reason"], report=report,
                     error="" if verdict["ok"] else verdict["reason"], artifacts=[path],
                     figures={"phase": verdict["phase"], "build_log_lines": lines.get("BUILD", 0),
                              "deploy_log_lines": lines.get("DEPLOY", 0)})


def do_deploy(ctx):
    ps = settings_of(ctx)
    try:
        do = _do_client(ctx, ps)
        ctx.progress(step="triggering the deployment", percent=10)
        deployment = digitalocean.deploy(do, ps.do_app_id)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    return _follow_and_keep_logs(ctx, do, ps, deployment, "do-deploy")


def do_rollback(ctx):
    """Roll the app back to the newest deployment before the active one that went live."""
    ps = settings_of(ctx)
    try:
        do = _do_client(ctx, ps)
        active = (digitalocean.app(do, ps.do_app_id).get("active_deployment") or {}).get("id")
        target = digitalocean.previous_deployment(do, ps.do_app_id, active)
        ctx.log(f"active deployment {active}; rolling back to {target['id']} of "
                f"{target.get('created_at')}")
        deployment = digitalocean.rollback(do, ps.do_app_id, target["id"])
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    result = _follow_and_keep_logs(ctx, do, ps, deployment, "do-rollback")
    result.report.update({"from": active, "to": target["id"]})
    return result


DO_UPKEEP_ITEMS = {"backups": "automated-backup-schedule-configured",
                   "maintenance": "database-maintenance-tasks-scheduled"}


def do_upkeep(ctx):
    ps = settings_of(ctx)
    try:
        do = _do_client(ctx, ps)
        ctx.progress(step="reading the cluster's backups and maintenance window", percent=30)
        found = digitalocean.upkeep(do, ps.do_database_id, timezone.now())
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    judged = {DO_UPKEEP_ITEMS[k]: v for k, v in found.items()}
    return judged_result(ctx, "do-upkeep", judged, {"cluster": ps.do_database_id},
                         figures={"backups": found["backups"]["count"]})


DO_ALERT_ITEMS = {"memory_disk": "disk-space-and-memory-alerts",
                  "monitoring": "monitoring-enabled"}


def do_alerts(ctx):
    ps = settings_of(ctx)
    try:
        do = _do_client(ctx, ps)
        ctx.progress(step="reading the alert policies", percent=30)
        found = digitalocean.alert_policies(do, ps.do_database_id)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    judged = {DO_ALERT_ITEMS[k]: v for k, v in found.items()}
    return judged_result(ctx, "do-alerts", judged, {"cluster": ps.do_database_id})


DO_DOMAIN_ITEMS = {"domain": "custom-domain-configured-if-applicable",
                   "certificate": "ssl-certificates-configured"}


def do_domain(ctx):
    ps = settings_of(ctx)
    try:
        do = _do_client(ctx, ps)
        ctx.progress(step="reading the app's domains", percent=30)
        found = digitalocean.domains(digitalocean.app(do, ps.do_app_id), timezone.now(),
                                     ps.do_min_cert_days)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    judged = {DO_DOMAIN_ITEMS[k]: v for k, v in found.items()}
    return judged_result(ctx, "do-domain", judged, {"app": ps.do_app_id})


# --- monitoring -----------------------------------------------------------------------------------

MONITORING_ITEMS = {
    "health": "application-health-checks-configured",
    "uptime": "uptime-monitoring-active",
    "pool": "connection-pool-monitoring-active",
    "performance": "performance-metrics-tracking",
    "error_rate": "error-rate-monitoring-configured",
    "alerting": "error-logging-and-alerting-enabled",
    "database_alert": "database-connection-failure-alerts",
    "slow_alert": "high-query-response-time-alerts",
    "error_alert": "application-error-rate-alerts",
}


def _sampling(cs, kind, now):
    """(ok, reason, samples) of the monitor's `kind` samples: on, and taken recently (within three
    intervals, at least five minutes), more than once in the uptime window."""

    if not cs.monitor_interval_seconds:
        return False, "monitoring is off (monitor_interval_seconds is 0)", []
    since = now - timedelta(hours=cs.uptime_window_hours)
    rows = list(MonitorSample.objects.filter(runbook=cs.runbook, kind=kind, taken_at__gte=since)
                .order_by("-taken_at", "-pk")[:1000])
    if not rows:
        return False, f"no {kind} sample in the last {cs.uptime_window_hours:g} hours", rows
    age = (now - rows[0].taken_at).total_seconds()
    fresh = max(3 * cs.monitor_interval_seconds, 300)
    if age > fresh:
        return False, (f"the latest {kind} sample is {age / 60:.0f} minutes old: the monitor is "
                       "not running"), rows
    if len(rows) < 2:
        return False, f"one {kind} sample so far: not yet a series", rows
    good = sum(1 for r in rows if r.ok)
    return True, (f"{len(rows)} {kind} samples in {cs.uptime_window_hours:g} h, the latest "
                  f"{age:.0f} s ago, {good / len(rows) * 100:.1f}% passed"), rows


def judge_monitoring(cs, now, triggers_seen, delivered):
    """item -> {ok, reason} from the monitor's samples, the triggers' evidence (name -> summary or
    None) and the test alert's deliveries ([(channel, state)])."""

    health_ok, health_why, health_rows = _sampling(cs, "health", now)
    db_ok, db_why, db_rows = _sampling(cs, "database", now)
    pool_ok, pool_why, _ = _sampling(cs, "pool", now)
    sent = [c for c, state in delivered if state == "sent"]
    failed = [c for c, state in delivered if state != "sent"]
    alert_ok = bool(delivered) and not failed
    alert_why = ("no alert channel (notify_emails or a webhook) is configured" if not delivered
                 else f"the test alert was not delivered by {', '.join(failed)}" if failed
                 else f"the test alert was delivered by {', '.join(sent)}")
    latest_health = health_rows[0] if health_rows else None
    timed = [r for r in db_rows if r.ok and r.latency_ms is not None]
    baseline = PerformanceBaseline.objects.filter(runbook=cs.runbook).first()

    def both(a, b):
        return {"ok": a[0] and b[0], "reason": f"{a[1]}; {b[1]}"}

    def trigger(name):
        summary = triggers_seen.get(name)
        return (summary is not None, f"the {name} trigger has evidence ({summary})" if summary
                is not None else f"the {name} trigger has no evidence yet")

    health = (health_ok and latest_health is not None and latest_health.ok,
              health_why if not health_ok else f"{health_why}; the latest answered "
              f"{latest_health.detail}")
    performance = (db_ok and bool(timed) and baseline is not None,
                   db_why if not db_ok else "no performance baseline is recorded" if baseline is
                   None else f"{len(timed)} timed database samples; baseline run "
                                 f"#{baseline.run_id}")
    on = (bool(cs.monitor_interval_seconds), f"the monitor samples every "
          f"{cs.monitor_interval_seconds} s and re-evaluates the triggers" if
          cs.monitor_interval_seconds else "monitoring is off (monitor_interval_seconds is 0)")
    alerting = (alert_ok, alert_why)
    verdicts = {
        "health": {"ok": health[0], "reason": health[1]},
        "uptime": {"ok": health_ok, "reason": health_why},
        "pool": {"ok": pool_ok, "reason": pool_why},
        "performance": {"ok": performance[0], "reason": performance[1]},
        "error_rate": both(trigger("error-rate"), on),
        "alerting": {"ok": alert_ok, "reason": alert_why},
        "database_alert": both((db_ok, db_why), alerting),
        "slow_alert": both(trigger("performance-degradation"), alerting),
        "error_alert": both(trigger("error-rate"), alerting),
    }
    return {MONITORING_ITEMS[k]: v for k, v in verdicts.items()}


def monitoring(ctx):
    """The Monitoring and Alert Configuration items, from what the app measures: the monitor's
    samples, the rollback triggers' evidence, and a test alert delivered now on every channel."""
    cs = RunbookCheckSettings.for_runbook(ctx.runbook)
    seen = {}
    for name in ("error-rate", "performance-degradation"):
        found = triggers.CHECKS[name](ctx.runbook, cs)
        seen[name] = found[3] if found is not None else None
    ctx.progress(step="sending a test alert", percent=40)
    rows = notify.dispatch("monitoring-test", ctx.runbook,
                           f"{ctx.runbook.name}: test alert from the monitoring job",
                           f"Run #{ctx.run.pk} checks that alerts reach you. Nothing is wrong.",
                           {"run_id": ctx.run.pk}, now=True)
    delivered = [(r.channel, r.state) for r in rows]
    for r in rows:
        ctx.log(f"test alert by {r.channel} to {r.recipients}: {r.state} after "
                f"{len(r.attempts)} attempt(s)")
    judged = judge_monitoring(cs, timezone.now(), seen, delivered)
    bound = bound_items(ctx)
    judged = {k: v for k, v in judged.items() if k in bound}
    return judged_result(ctx, "monitoring", judged, {
        "interval_seconds": cs.monitor_interval_seconds, "triggers": seen,
        "test_alert": [{"channel": r.channel, "recipients": r.recipients, "state": r.state,
                        "notification": r.pk} for r in rows]})


KINDS = (
    JobKind("e2e-report", "Read the end-to-end test report", e2e_report,
            needs_sources=False, time_limit=120,
            description="The JUnit XML report of e2e_tests.py: each item is earned when the tests "
                        "a lead mapped to it all passed."),
    JobKind("rollback-triggers", "Evaluate the rollback triggers",
            rollback_triggers, needs_sources=False, time_limit=120,
            parts=tuple(triggers.TITLES.items()),
            description="Data corruption, performance degradation, security, error rate: each "
                        "Critical Issue is ticked when its trigger fired, from evidence."),
    JobKind("announce", "Announce the maintenance window", announce,
            needs_sources=False, time_limit=120,
            description="Mail the maintenance window and downtime notice to the emergency "
                        "contacts; the delivered message is kept as evidence."),
    JobKind("app-database", "Check the app's database", app_database,
            needs_sources=False, needs_target=True, time_limit=300,
            description="Tables created, default data, pg_stat_statements tracking, the app's "
                        "sessions on TLS and writing: read-only SQL through the target URL."),
    JobKind("do-database", "Check the DigitalOcean database cluster",
            do_database, needs_sources=False, time_limit=120,
            description="Through pydo: the managed PostgreSQL cluster is online, its engine and "
                        "version, its plan."),
    JobKind("do-app", "Check the DigitalOcean app's settings", do_app,
            needs_sources=False, time_limit=120,
            description="Through pydo: the app spec as deployed against the checked app-spec.yaml "
                        "(every env key, secrets typed SECRET, no value shown) and the instance "
                        "sizes."),
    JobKind("do-deploy", "Deploy on DigitalOcean App Platform", do_deploy,
            needs_sources=False, time_limit=3600,
            description="Trigger a deployment of the app, follow it to ACTIVE and keep its build "
                        "and deploy logs; a failed deployment fails with its phase and cause."),
    JobKind("do-rollback", "Roll the app back to its previous deployment", do_rollback,
            needs_sources=False, time_limit=3600, who=LEAD,
            description="Leads only. Stops the current deployment by rolling the app back to the "
                        "previous live one (its spec and configuration), followed to ACTIVE."),
    JobKind("do-upkeep", "Check the database cluster's backups and maintenance window",
            do_upkeep, needs_sources=False, time_limit=120,
            description="Through pydo: daily backups taken at the configured hour, a weekly "
                        "maintenance window set."),
    JobKind("do-alerts", "Check the DigitalOcean alert policies", do_alerts,
            needs_sources=False, time_limit=120,
            description="Through pydo: enabled CPU, memory and disk alert policies on the database "
                        "cluster, each notifying someone."),
    JobKind("do-domain", "Check the app's domain and certificate", do_domain,
            needs_sources=False, time_limit=120,
            description="Through pydo: the app's custom domains are ACTIVE and their certificates "
                        "valid long enough."),
    JobKind("monitoring", "Check monitoring and alerting", monitoring,
            needs_sources=False, time_limit=300,
            description="The monitor's samples are being taken (health, uptime, database, pool), "
                        "the rollback triggers have evidence, and a test alert is delivered on "
                        "every configured channel."),
    JobKind("repo", "Check the MINGUS repository", repo_check,
            needs_sources=False, time_limit=300,
            description="Clean tree at the deployed commit; scripts, configuration and documents "
                        "committed there."),
)


def register_kinds():
    for kind in KINDS:
        register(kind)


def command_workdir(runbook):
    """Where a configured command without a working directory of its own runs: the MINGUS
    checkout a lead pointed this runbook at (the shipped init_db.py, performance_test.py...)."""
    return RunbookProofSettings.of(runbook).repo_path
