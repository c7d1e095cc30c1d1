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

from checklist.jobs import JobKind, register
from checklist.tasks import JobInputError, JobResult

from . import junit, repo
from .models import RunbookProofSettings
from .report import CheckInputError

log = logging.getLogger(__name__)

KINDS = (
    JobKind("e2e-report", "Read the end-to-end test report", "deploychecks.proof_jobs.e2e_report",
            needs_sources=False, time_limit=120,
            description="The JUnit XML report of e2e_tests.py: each item is earned when the tests "
                        "a lead mapped to it all passed."),
    JobKind("repo", "Check the MINGUS repository", "deploychecks.proof_jobs.repo_check",
            needs_sources=False, time_limit=300,
            description="Clean tree at the deployed commit; scripts, configuration and documents "
                        "committed there."),
)


def register_kinds():
    for kind in KINDS:
        register(kind)


def settings_of(ctx):
    return RunbookProofSettings.of(ctx.runbook)


def bound_texts(ctx):
    return {i.text for i in ctx.run.items.all()}


def judged_result(ctx, name, judged, report, figures=None, artifacts=()):
    """A JobResult that earns each judged item on its own outcome (item -> {ok, reason})."""
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
                     item_outcomes={i: v["ok"] for i, v in judged.items()},
                     item_notes={i: v["reason"][:300] for i, v in judged.items()})


def _unknown_items(ctx, mapping, what):
    unknown = sorted(set(mapping) - bound_texts(ctx))
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

SCRIPTS_ITEM = "All migration scripts committed to repository"
CONFIG_ITEM = "Configuration files updated"


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
    bound = bound_texts(ctx)
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
