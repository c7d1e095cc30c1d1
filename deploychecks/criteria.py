"""The Success Criteria, decided from evidence instead of ticked by hand.

Each criterion reads one figure from the newest evidence that holds it (a check run's stored
report, the latest `validate` run, or the monitoring samples), sets it against the runbook's
threshold, and says where the figure came from (run id, evidence name and sha256). With no
evidence the criterion is "no evidence yet" (ok is None), never a pass.
"""
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.utils import timezone

from checklist.evidence import EvidenceBroken, read_verified
from checklist.jobs import items_by_part
from checklist.models import TaskRun

from .models import MonitorSample, RunbookCheckSettings

log = logging.getLogger(__name__)

ENDED = ("succeeded", "failed")

# The criteria a lead can bind an item to (the success-criteria job's parts): key, what the
# criterion measures, in its own words. The thresholds are the runbook's settings, so the label
# names none; the item a criterion is meant as is whatever item its runbook bound to it, shown
# with that item's own text (evaluate()).
CRITERIA = (
    ("page_load", "Page load p95 under the threshold (check-http)"),
    ("api_response", "API response p95 under the threshold (check-http)"),
    ("db_query", "Slowest query p95 under the threshold (check-performance)"),
    ("pool_utilization", "Connection pool use under the threshold (check-performance)"),
    ("app_uptime", "Application health samples up over the window (monitoring)"),
    ("db_uptime", "Database samples up over the window (monitoring)"),
    ("zero_data_loss", "No row missing, mismatched or rejected (validate)"),
)
LABEL = dict(CRITERIA)
KIND = "success-criteria"


@dataclass
class Evidence:
    run_id: int
    kind: str
    name: str
    sha256: str


@dataclass
class Result:
    key: str
    label: str  # what the criterion measures (CRITERIA)
    ok: bool | None  # None: no evidence yet
    figure: object = None
    threshold: str = ""
    evidence: dict | None = None
    detail: str = ""
    item: str = ""  # the text of the item the runbook bound to it ('' when none is)

    def to_dict(self):
        return asdict(self)

    @property
    def state(self):
        return "no-evidence" if self.ok is None else ("pass" if self.ok else "fail")


@dataclass
class RunEvidence:
    """The newest ended run of a kind, with its stored report and figures."""

    run: object
    report: dict
    figures: dict = field(default_factory=dict)
    report_evidence: object = None

    def cite(self):
        ev = self.report_evidence
        return asdict(Evidence(self.run.pk, self.run.kind, ev.name if ev else "",
                               ev.sha256 if ev else ""))


def latest_report(runbook, kind):
    """The newest succeeded-or-failed run of `kind` that stored a report, or None.

    Reads the report file the job layer wrote only once its sha256 matches the Evidence row, and
    the run's `figures` evidence. When the newest report is missing or changed there is no
    trustworthy newest evidence: None (an older run must not stand in for it).
    """
    runs = (TaskRun.objects.filter(runbook=runbook, kind=kind, state__in=ENDED)
            .order_by("-finished_at", "-pk").prefetch_related("evidence"))
    for run in runs[:5]:
        evidence = list(run.evidence.all())
        report_ev = next((e for e in evidence if e.kind == "report"), None)
        if report_ev is None:
            continue
        try:
            report = json.loads(read_verified(report_ev))
        except EvidenceBroken as broken:
            log.warning("run #%s: report evidence not used: %s", run.pk, broken)
            return None
        except (OSError, ValueError):
            continue
        figures = {}
        for e in evidence:
            if e.kind == "figures" and isinstance(e.figures, dict):
                figures.update(e.figures)
        if isinstance(report, dict) and isinstance(report.get("figures"), dict):
            figures = {**report["figures"], **figures}
        return RunEvidence(run, report if isinstance(report, dict) else {}, figures, report_ev)
    return None


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _from_check(runbook, key, label, kind, figure_key, limit, unit):
    found = latest_report(runbook, kind)
    threshold = f"< {limit:g} {unit}"
    if found is None:
        return Result(key, label, None, None, threshold, None, f"no {kind} run yet")
    value = _number(found.figures.get(figure_key))
    if value is None:
        return Result(key, label, None, None, threshold, found.cite(),
                      f"{kind} run #{found.run.pk} has no {figure_key} figure")
    return Result(key, label, value < limit, value, threshold, found.cite(),
                  f"{figure_key} of {kind} run #{found.run.pk}")


def zero_data_loss(runbook):
    """From the latest validate run: it passed, and no row is missing, mismatched or rejected."""
    label, threshold = LABEL["zero_data_loss"], "0 missing, 0 mismatched, 0 rejected"
    found = latest_report(runbook, "validate")
    if found is None:
        return Result("zero_data_loss", label, None, None, threshold, None,
                      "no validate run yet")
    figures = {**{k: v for k, v in found.report.items() if not isinstance(v, (dict, list))},
               **found.figures}
    missing = _number(figures.get("missing_rows"))
    mismatches = _number(figures.get("mismatches"))
    checked = _number(figures.get("rows_checked"))
    # A row the run rejected is not in the target: it is lost unless someone loads it.
    rejected = _number(figures.get("rejected"))
    figure = {"missing_rows": missing, "mismatches": mismatches, "rejected": rejected,
              "rows_checked": checked}
    if missing is None and mismatches is None:
        return Result("zero_data_loss", label, None, figure, threshold, found.cite(),
                      f"validate run #{found.run.pk} reports no missing/mismatch figures")
    ok = (bool(found.report.get("ok")) and not missing and not mismatches and not rejected
          and (checked is None or checked > 0))
    return Result("zero_data_loss", label, ok, figure, threshold, found.cite(),
                  f"validate run #{found.run.pk} ({found.run.state})")


def uptime(runbook, kind, hours=24):
    """{pct, samples, failed, first, last} of one kind over the last `hours`, or None."""
    since = timezone.now() - timedelta(hours=hours)
    rows = list(MonitorSample.objects.filter(runbook=runbook, kind=kind, taken_at__gte=since)
                .order_by("taken_at").values_list("ok", "taken_at"))
    if not rows:
        return None
    failed = sum(1 for ok, _ in rows if not ok)
    return {"pct": round((len(rows) - failed) / len(rows) * 100, 3), "samples": len(rows),
            "failed": failed, "first": rows[0][1].isoformat(), "last": rows[-1][1].isoformat()}


def uptime_result(runbook, key, label, kind, limit, hours):
    up = uptime(runbook, kind, hours)
    threshold = f"> {limit:g}% over {hours:g} h"
    if up is None:
        return Result(key, label, None, None, threshold, None,
                      f"no {kind} monitoring samples in the last {hours:g} h")
    return Result(key, label, up["pct"] > limit, up["pct"], threshold,
                  {"monitoring": kind, "samples": up["samples"], "failed": up["failed"],
                   "from": up["first"], "to": up["last"]},
                  f"{up['samples'] - up['failed']} of {up['samples']} {kind} samples ok")


def evaluate(runbook):
    """Every success criterion of the runbook, in the seed's order, each with the text of the
    item the runbook bound to it."""
    cs = RunbookCheckSettings.for_runbook(runbook)
    results = [
        _from_check(runbook, "page_load", LABEL["page_load"], "check-http",
                    "page_p95_ms", cs.page_load_ms, "ms (page p95)"),
        _from_check(runbook, "api_response", LABEL["api_response"], "check-http",
                    "api_p95_ms", cs.api_ms, "ms (API p95)"),
        _from_check(runbook, "db_query", LABEL["db_query"], "check-performance",
                    "worst_p95_ms", cs.db_query_ms, "ms (slowest query p95)"),
        _from_check(runbook, "pool_utilization", LABEL["pool_utilization"],
                    "check-performance", "pool_utilization_pct", cs.pool_utilization_pct, "%"),
        uptime_result(runbook, "app_uptime", LABEL["app_uptime"],
                      MonitorSample.HEALTH, cs.app_uptime_pct, cs.uptime_window_hours),
        uptime_result(runbook, "db_uptime", LABEL["db_uptime"],
                      MonitorSample.DATABASE, cs.db_uptime_pct, cs.uptime_window_hours),
        zero_data_loss(runbook),
    ]
    bound = items_by_part(runbook, KIND)
    for result in results:
        result.item = bound[result.key].text if result.key in bound else ""
    return results


def criteria_context(runbook):
    """For templates/deploychecks/_criteria.html."""
    return {"runbook": runbook, "criteria": evaluate(runbook)}
