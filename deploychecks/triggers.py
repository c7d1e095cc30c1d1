"""The Rollback Plan's triggers, evaluated from evidence once the Deployment phase opens.

    data-corruption            the latest validate run found missing, mismatched or rejected rows
    performance-degradation    the latest check-performance run is slower than the baseline by
                               more than the runbook's degradation_pct (performance.compare)
    security                   the latest check-http run failed a TLS, certificate or header
                               criterion
    error-rate                 the latest check-http run's error rate is over the threshold

A trigger that starts firing is persisted (TriggerFiring), audited and notified once; it stays
open, without new notifications, while the evidence still shows it, and is cleared (audited)
when newer evidence no longer does. A trigger never rolls back by itself: the banner points a
lead to the rollback job.

Evaluated after every check or validate run ends (jobs.after_run) and by the monitoring beat.
"""
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from checklist import audit, rules
from checklist.jobs import items_by_part
from checklist.models import ItemState, Phase
from checks import performance

from .criteria import latest_report
from .models import PerformanceBaseline, RunbookCheckSettings, TriggerFiring
from .notify import notify_firing

log = logging.getLogger(__name__)

SECURITY_CRITERIA = ("tls_certificate", "certificate_expiry", "hsts", "csp",
                     "x_content_type_options", "frame_protection", "referrer_policy",
                     "https_redirect")
ROLLBACK_ITEM_KEY = "restore-sqlite-databases-from-backup"  # the item the banner points at
DEPLOYMENT_PHASE_KEY = "deployment"
KIND = "rollback-triggers"
# What each trigger watches, in its own words (the rollback-triggers job's parts). A firing is
# titled with the text of the item its runbook bound to the trigger, or this label when none is.
TITLES = {
    "data-corruption": "Validation found missing, mismatched or rejected rows",
    "performance-degradation": "Slower than the performance baseline",
    "security": "A TLS, certificate or security-header check failed",
    "error-rate": "Error rate over the threshold",
}


def deployment_open(facts):
    """True once the Deployment phase (the phase keyed `deployment`; in a checklist without one,
    the phase its success criteria open with) is open."""
    phase = next((p for p in facts.phases if p.key == DEPLOYMENT_PHASE_KEY), None)
    if phase is None:
        phase = next((p for p in facts.phases if p.pk in {
            q.opens_with_id for q in facts.phases if q.kind == Phase.SUCCESS}), None)
    if phase is None:
        return False
    return facts.status(phase).state != rules.LOCKED


def _data_corruption(runbook, cs):
    found = latest_report(runbook, "validate")
    if found is None:
        return None
    figures = {**{k: v for k, v in found.report.items() if not isinstance(v, (dict, list))},
               **found.figures}
    counts = {k: figures.get(k) for k in ("mismatches", "missing_rows", "rejected",
                                          "rows_checked")}
    if counts["mismatches"] is None and counts["missing_rows"] is None:
        return None
    # Rejected rows never reached the target: they count as lost, like missing ones.
    bad = (counts["mismatches"] or 0) + (counts["missing_rows"] or 0) + (counts["rejected"] or 0)
    return (bad > 0, counts, found.cite(),
            f"validate run #{found.run.pk}: {counts['mismatches'] or 0} mismatched, "
            f"{counts['missing_rows'] or 0} missing, {counts['rejected'] or 0} rejected of "
            f"{counts['rows_checked']} rows checked")


def _performance(runbook, cs):
    baseline = PerformanceBaseline.objects.filter(runbook=runbook).first()
    found = latest_report(runbook, "check-performance") if baseline else None
    if found is None:
        return None
    if found.run.pk == baseline.run_id:
        return False, {"baseline_run_id": baseline.run_id}, found.cite(), "the latest run is " \
                                                                          "the baseline"
    if not (found.report.get("figures") or {}).get("queries"):
        return None  # the run could not time anything (no connection): not a measurement
    result = performance.compare(found.report, baseline.report,
                                 degradation_pct=cs.degradation_pct)
    degraded = result["degraded"]
    figures = {"degradation_pct": cs.degradation_pct, "compared": result["compared"],
               "degraded": degraded[:5], "overall": result["overall"],
               "baseline_run_id": baseline.run_id}
    worst = degraded[0] if degraded else None
    summary = (f"{len(degraded)} of {result['compared']} queries slower than the baseline "
               f"(run #{baseline.run_id}) by more than {cs.degradation_pct:g}%; worst "
               f"{worst['label']}: {worst['baseline_ms']} -> {worst['current_ms']} ms "
               f"(+{worst['change_pct']}%)" if worst else "no query degraded")
    return bool(degraded), figures, found.cite(), summary


def _security(runbook, cs):
    found = latest_report(runbook, "check-http")
    if found is None or not found.report.get("criteria"):
        return None
    failed = [c for c in found.report["criteria"]
              if c.get("name") in SECURITY_CRITERIA and not c.get("ok")]
    figures = {"failed": [{"name": c["name"], "measured": c.get("measured"),
                           "expected": c.get("expected")} for c in failed]}
    return (bool(failed), figures, found.cite(),
            f"check-http run #{found.run.pk} failed: {', '.join(c['name'] for c in failed)}"
            if failed else "every TLS and header criterion passed")


def _error_rate(runbook, cs):
    found = latest_report(runbook, "check-http")
    if found is None or found.figures.get("error_rate_pct") is None:
        return None
    rate = float(found.figures["error_rate_pct"])
    return (rate > cs.error_rate_pct,
            {"error_rate_pct": rate, "threshold_pct": cs.error_rate_pct,
             "requests": found.figures.get("requests"), "errors": found.figures.get("errors")},
            found.cite(), f"error rate {rate:g}% over {found.figures.get('requests')} requests "
                          f"(threshold {cs.error_rate_pct:g}%)")


CHECKS = {
    "data-corruption": _data_corruption,
    "performance-degradation": _performance,
    "security": _security,
    "error-rate": _error_rate,
}


def evaluate(runbook):
    """Evaluate every trigger; open, keep or clear firings. Returns the open firings."""
    facts = rules.RunbookFacts.load(runbook)
    if not deployment_open(facts):
        return []
    cs = RunbookCheckSettings.for_runbook(runbook)
    for name, check in CHECKS.items():
        outcome = check(runbook, cs)
        if outcome is None:
            continue  # no evidence either way: leave any open firing as it is
        firing, figures, evidence, summary = outcome
        try:
            _apply(runbook, name, firing, figures, evidence or {}, summary)
        except IntegrityError:
            # Another process opened the same firing a moment ago: it has notified already.
            log.info("trigger %s on runbook %s already open", name, runbook.pk)
    return list(TriggerFiring.objects.filter(runbook=runbook, cleared_at__isnull=True))


def _apply(runbook, name, firing, figures, evidence, summary):
    with transaction.atomic():
        open_ = (TriggerFiring.objects.select_for_update()
                 .filter(runbook=runbook, trigger=name, cleared_at__isnull=True).first())
        if firing and open_ is None:
            bound = items_by_part(runbook, KIND).get(name)
            row = TriggerFiring.objects.create(runbook=runbook, trigger=name,
                                               title=bound.text if bound else TITLES[name],
                                               summary=summary[:500], figures=figures,
                                               evidence=evidence)
            event = audit.record("trigger-fired", runbook=runbook, obj=row,
                                 after={"trigger": name, "summary": row.summary,
                                        "figures": figures, "evidence": evidence})
            notify_firing(row, event)
            row.notified_at = timezone.now()
            row.save(update_fields=["notified_at"])
        elif not firing and open_ is not None:
            open_.cleared_at = timezone.now()
            open_.save(update_fields=["cleared_at"])
            audit.record("trigger-cleared", runbook=runbook, obj=open_,
                         after={"trigger": name, "summary": summary[:500], "evidence": evidence})


def banner_context(runbook):
    """For templates/deploychecks/_trigger_banner.html: the open firings and where to act."""
    firings = list(TriggerFiring.objects.filter(runbook=runbook, cleared_at__isnull=True)
                   .order_by("fired_at"))
    item = None
    if firings:
        item = (ItemState.objects.filter(runbook=runbook, item__key=ROLLBACK_ITEM_KEY)
                .select_related("item").first())
    return {"runbook": runbook, "firings": firings, "rollback_state": item,
            "rollback_kind": "rollback"}
