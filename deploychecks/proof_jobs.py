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
from email.utils import format_datetime

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from checklist.job_context import JobInputError, JobResult
from checklist.jobs import JobKind, register
from checklist.models import RunbookBinding
from checks import appdb, digitalocean, junit, repo
from checks.report import CheckInputError

from . import triggers
from .models import RunbookCheckSettings, RunbookProofSettings

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
    by_part = {b.part: b.item.text for b in RunbookBinding.objects.filter(
        runbook=ctx.runbook, kind=ctx.run.kind).select_related("item")}
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
    token = ps.do_token()
    ctx._secrets.append(token)  # never in the log or the evidence, whatever pydo says
    try:
        do = digitalocean.client(token, ps.do_api_endpoint)
        ctx.progress(step="reading the database cluster", percent=30)
        found = digitalocean.database(do, ps.do_database_id, ps.do_min_pg_version)
    except CheckInputError as exc:
        raise JobInputError(str(exc)) from None
    judged = {DO_DATABASE_ITEMS[k]: v for k, v in found.items()}
    return judged_result(ctx, "do-database", judged, {"cluster": ps.do_database_id},
                         figures={"version": found["provisioned"].get("version"),
                                  "size": found["plan"]["size"]})


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
