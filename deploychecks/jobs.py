"""The deployment checks as job kinds, and what happens when a check or validate run ends.

Each `check-*` kind runs one check of the registry through `registry.run_check`. Its options are
the runbook's check settings (thresholds, paths, the deployed URL, the queries) and the target
URL from the runbook when the check needs one; a run adds only the parameters its kind declares
(run knobs such as sample counts, never a setting). The check's report is
the run's report; its scalar figures are the run's figures; the run passes when the report does.

`success-criteria` evaluates the Success Criteria from evidence; its items are bound to it and
earned one by one (JobResult.item_outcomes): a bound job otherwise earns all its items or none.

When any of these runs (or a `validate` run) ends, `after_run` (called by the job runner's
finish()) records the first passing performance run as the baseline and evaluates the rollback
triggers.
"""
import json
import logging

from django.db import IntegrityError, transaction

from checklist.job_context import JobResult
from checklist.jobs import JobKind, register
from checklist.models import TaskRun
from checklist.params import LEAD, Param
from checks import performance, reach, registry
from checks.redact import scrub, url_password
from checks.report import CheckInputError

from . import criteria, triggers
from .criteria import CRITERIA, latest_report
from .models import PerformanceBaseline, RunbookCheckSettings

log = logging.getLogger(__name__)

# What a run may pass: only knobs of the run itself. Everything that decides what is checked and
# whether it passes (SQL, paths, hosts, URLs, TLS, thresholds, rules) is a check setting a lead
# saved (RunbookCheckSettings, through actions.save_check_settings); pool sizes and the query set
# shape what is measured, so only a lead may change them for one run.


# --- handlers -----------------------------------------------------------------------------------

def _settings(ctx):
    return RunbookCheckSettings.for_runbook(ctx.runbook)


def _target(ctx):
    return ctx.target_url() if hasattr(ctx.runbook, "target") else None


def _kind(ctx):
    return next(k for k in KINDS if k.name == ctx.run.kind)


def run_check(ctx, name, settings, extra_secrets=()):
    """Run check `name` with the lead's `settings` plus the run's declared parameters (checked by
    checklist/params.py before the run was queued); a JobResult."""
    check = registry.get(name)
    options = {k: v for k, v in settings.items() if v not in (None, "", [], {})}
    declared = {p.name for p in _kind(ctx).params}
    # A declared parameter never names a setting (tests/checklist/test_job_params.py holds that),
    # and anything undeclared that reached the run is ignored, not laid over the settings.
    options.update({k: v for k, v in ctx.params.items() if k in declared and k not in settings})
    # Files a check reads are held to CHECK_FILE_ROOTS (regular files, never the app's database).
    for key in ("path", "schema", "rules"):
        if isinstance(options.get(key), str) and not options[key].lstrip().startswith("{"):
            options[key] = str(ctx.checked_file(options[key]))
    secrets = [s for s in (*extra_secrets, url_password(str(options.get("url") or ""))) if s]
    ctx.log(scrub(f"check {name}: " + ", ".join(
        f"{k}={v}" for k, v in sorted(options.items()) if k != "rules"), *secrets))
    ctx.progress(step=f"running the {name} check", percent=5)
    try:
        report = registry.run_check(name, **registry.coerce(check, options)).to_dict()
    except CheckInputError as exc:
        message = scrub(str(exc), *secrets)
        ctx.log(f"unusable input: {message}")
        return JobResult(ok=False, error=message, report={"name": name, "ok": False,
                                                          "error": message})
    # The checks redact their own URLs; this pass is for anything that came from elsewhere.
    report = json.loads(scrub(json.dumps(report, default=str), *secrets))
    for c in report["criteria"]:
        ctx.log(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['measured']} "
                f"(expected {c['expected']})"
                + (f" because {c['detail']}" if not c["ok"] and c.get("detail") else ""))
    failed = [c for c in report["criteria"] if not c["ok"]]
    summary = (f"{name}: all {len(report['criteria'])} criteria passed" if report["ok"] else
               f"{name}: {len(failed)} of {len(report['criteria'])} criteria failed "
               f"({', '.join(c['name'] for c in failed[:6])})")
    # The error names the first failure's cause (its detail), not just that it failed: "connect:
    # server does not support SSL ..." rather than "connect: failed".
    error = ""
    if not report["ok"]:
        first = failed[0] if failed else None
        why = first and (first.get("detail") or f"measured {first.get('measured')}, expected "
                                                f"{first.get('expected')}")
        error = (f"{name}: {first['name']}: {why}" if first else summary)
        if len(failed) > 1:
            error += f" (and {len(failed) - 1} more of {len(report['criteria'])} criteria failed)"
    return JobResult(ok=report["ok"], summary=summary, report=report,
                     figures=key_figures(report), error=error)


def key_figures(report):
    """The report's scalar figures (nested tables such as per-query timings stay in the report)."""
    figures = {k: v for k, v in (report.get("figures") or {}).items()
               if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 200)
               or v is None}
    figures["criteria_failed"] = [c["name"] for c in report.get("criteria", []) if not c["ok"]]
    return figures


def check_env(ctx):
    cs = _settings(ctx)
    return run_check(ctx, "env", {"path": cs.env_path, "rules": cs.env_rules or None})


def check_app_spec(ctx):
    cs = _settings(ctx)
    return run_check(ctx, "app-spec", {"path": cs.app_spec_path})


def check_connectivity(ctx):
    cs = _settings(ctx)
    url = _target(ctx)
    return run_check(ctx, "connectivity", {"url": url, "ca_file": cs.target_ca_file},
                     extra_secrets=[url_password(url or "")])


def check_http(ctx):
    cs = _settings(ctx)
    beyond = reach.problems(cs.deployed_url, cs.health_path, cs.http_paths, cs.http_url)
    if beyond:  # settings saved before the rule: refused here too, nothing is requested
        message = "check settings reach beyond the deployed app: " + "; ".join(beyond)
        return JobResult(ok=False, error=message, report={"name": "http", "ok": False,
                                                          "error": message})
    return run_check(ctx, "http", {
        "url": cs.deployed_url, "http_url": cs.http_url, "health_path": cs.health_path,
        "ca_file": cs.ca_file,
        "paths": cs.http_paths or None, "page_p95_ms": cs.page_load_ms, "api_p95_ms": cs.api_ms})


def check_performance(ctx):
    """The performance check, compared with the runbook's baseline when it has one."""

    cs = _settings(ctx)
    url = _target(ctx)
    result = run_check(ctx, "performance", {
        "url": url, "ca_file": cs.target_ca_file, "queries": cs.performance_queries or None,
        "max_p95_ms": cs.db_query_ms,
        "max_pool_utilization_pct": cs.pool_utilization_pct},
        extra_secrets=[url_password(url or "")])
    baseline = PerformanceBaseline.objects.filter(runbook=ctx.runbook).first()
    if baseline is None or not (result.report.get("figures") or {}).get("queries"):
        if result.ok:
            ctx.log("no baseline yet: this run becomes the baseline when it is recorded")
        return result
    comparison = performance.compare(result.report, baseline.report,
                                     degradation_pct=cs.degradation_pct)
    comparison["baseline_run_id"] = baseline.run_id
    comparison["baseline_sha256"] = baseline.evidence.sha256 if baseline.evidence else ""
    result.report["baseline_comparison"] = comparison
    result.figures.update({
        "baseline_run_id": baseline.run_id,
        "degraded_queries": len(comparison["degraded"]),
        "worst_degradation_pct": comparison["degraded"][0]["change_pct"]
        if comparison["degraded"] else 0.0,
        "overall_change_pct": comparison["overall"]["change_pct"],
    })
    ctx.log(f"against baseline run #{baseline.run_id}: {len(comparison['degraded'])} of "
            f"{comparison['compared']} queries slower by more than {cs.degradation_pct:g}%")
    return result


def success_criteria(ctx):
    """Evaluate the criteria; each item is earned (or its earned tick withdrawn) on its own
    criterion's outcome when the run is recorded (checklist.runner.earn); a criterion without
    evidence leaves its item as it is."""

    results = criteria.evaluate(ctx.runbook)
    outcomes, notes = {}, {}
    for r in results:
        ctx.log(f"{r.state:11} {r.key}: {r.figure} (threshold {r.threshold}) {r.detail}")
        if r.ok is not None:
            # Keyed by the criterion: an item bound to it as its part follows it.
            outcomes[r.key] = bool(r.ok)
            notes[r.key] = f"{r.key}: {r.figure} ({r.threshold}); evidence {r.evidence}"
    passing = [r.item for r in results if r.ok and r.item]  # the bound items it earns
    report = {"name": "success-criteria", "ok": all(r.ok for r in results),
              "criteria": [r.to_dict() for r in results], "earns": passing}
    passed = len(passing)
    missing = sum(1 for r in results if r.ok is None)
    figures = {r.key: r.figure for r in results if not isinstance(r.figure, dict)}
    figures.update({"passed": passed, "failed": len(results) - passed - missing,
                    "no_evidence": missing})
    summary = f"{passed} of {len(results)} criteria pass ({missing} without evidence)"
    return JobResult(ok=report["ok"], summary=summary, report=report, figures=figures,
                     error="" if report["ok"] else summary, item_outcomes=outcomes,
                     item_notes=notes)


# --- after a run ends ---------------------------------------------------------------------------

def after_run(run):
    """Once a check or validate run has ended and is committed (checklist/runner.py finish()
    calls this, registered in DeployChecksConfig.ready()): the first passing performance run
    becomes the baseline, and the rollback triggers are evaluated on the new evidence."""
    if run.kind not in WATCHED or run.state not in ("succeeded", "failed"):
        return
    try:
        run = TaskRun.objects.select_related("runbook").get(pk=run.pk)
        if run.kind == "check-performance" and run.state == "succeeded":
            record_baseline(run)
        triggers.evaluate(run.runbook)
    except Exception:  # the run is finished and recorded whatever happens here
        log.exception("after run #%s", run.pk)


def record_baseline(run):
    """The first passing performance run of a runbook becomes its baseline."""
    if PerformanceBaseline.objects.filter(runbook_id=run.runbook_id).exists():
        return None
    found = latest_report(run.runbook, "check-performance")
    if found is None or found.run.pk != run.pk:
        return None
    try:
        with transaction.atomic():
            return PerformanceBaseline.objects.create(
                runbook_id=run.runbook_id, run=run, evidence=found.report_evidence,
                report=found.report)
    except IntegrityError:
        return None


KINDS = (
    JobKind("check-env", "Check environment variables", check_env,
            params=(Param("component", "str", "app spec only: also check this component's envs",
                          max_length=100),
                    Param("format", "choice", "how to read the file", choices=("auto", "env",
                                                                               "spec"))),
            needs_sources=False, time_limit=120,
            description="DATABASE_URL, DB_POOL_SIZE, DB_SSL_MODE, secrets, production mode, "
                        "from an env file or app spec."),
    JobKind("check-app-spec", "Check app-spec.yaml", check_app_spec,
            needs_sources=False, time_limit=120,
            description="App Platform schema, health checks, secrets, bindings, scaling."),
    JobKind("check-connectivity", "Check the target PostgreSQL connection",
            check_connectivity, needs_target=True, needs_sources=False,
            params=(Param("samples", "int", "SELECT 1 round trips to time", min=1, max=1000),
                    Param("pool_size", "int", "connections opened at once (DB_POOL_SIZE)",
                          min=1, max=500, who=LEAD)),
            time_limit=600,
            description="Connect, TLS in use, a pool of DB_POOL_SIZE, headroom, latency."),
    JobKind("check-performance", "Measure query performance (baseline)",
            check_performance, needs_target=True, needs_sources=False,
            params=(Param("iterations", "int", "runs per query", min=1, max=1000),
                    Param("concurrency", "int", "threads sharing the pool", min=1, max=64),
                    Param("pool_requests", "int", "queries run through the pool", min=1,
                          max=10000),
                    Param("pool_size", "int", "pool size for the utilization test", min=1,
                          max=500, who=LEAD),
                    Param("default_queries", "bool", "also time queries derived from the schema",
                          who=LEAD)),
            time_limit=1800,
            description="Query p50/p95 on the target, pool utilization; compared with the "
                        "baseline (the first passing run)."),
    JobKind("check-http", "Check the deployed site", check_http,
            needs_sources=False,
            params=(Param("requests", "int", "total requests of the load test", min=1, max=1000),
                    Param("concurrency", "int", "concurrent clients", min=1, max=50),
                    Param("time_cap", "float", "seconds before the load test stops sending",
                          min=1, max=120)),
            time_limit=600, description="Health, TLS certificate, security headers, "
                                        "HTTP->HTTPS, bounded load."),
    JobKind("success-criteria", "Evaluate the success criteria",
            success_criteria, needs_sources=False, time_limit=120, parts=CRITERIA,
            description="Decide each Success Criterion from evidence; tick those that pass."),
)
WATCHED = {k.name for k in KINDS} | {"validate"}


def register_kinds():
    for kind in KINDS:
        register(kind)
