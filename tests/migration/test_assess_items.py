"""Assess and schema items are judged one by one from the step's report (issue 10, part 4)."""
from migration import steps
from migration.jobs import ASSESS_ITEMS, schema_outcomes
from tests.conftest import FIXTURES

CONFLICTS = "table-conflicts-identified-and-resolved"


def test_conflicts_the_schema_resolves_are_reported_resolved_on_the_real_files(tmp_path):
    sources = {"mingus": FIXTURES / "mingus.db", "instance": FIXTURES / "instance-mingus.db"}
    report = steps.assess(sources, tmp_path / "w").to_dict()
    assert report["conflicts"] and all(c["resolved"] for c in report["conflicts"])
    assert not any(p.startswith("conflict:") for p in report["problems"])
    judged = {text: judge(report) for text, judge in ASSESS_ITEMS.items()}
    assert judged == dict.fromkeys(ASSESS_ITEMS, True)


def test_an_unresolved_conflict_or_a_missing_estimate_fails_its_item_alone(tmp_path):
    report = steps.assess({"mingus": FIXTURES / "mingus.db"}, tmp_path / "w").to_dict()
    report["conflicts"] = [{"table": "users", "resolved": False}]
    report["estimate"] = {"rows": None, "seconds": None, "postgres_bytes": 0}
    judged = {text: judge(report) for text, judge in ASSESS_ITEMS.items()}
    assert judged == {"assess-databases-py-executed-and-report-reviewed": True,
                      CONFLICTS: False, "data-volume-and-migration-time-estimated": False,
                      "storage-requirements-calculated": False}


def test_the_uuid_item_needs_the_extension_present_on_the_target():
    assert schema_outcomes(True, {"uuid_extension": True}) == {
        "all-constraints-and-indexes-verified": True, "uuid-extension-enabled-in-postgresql": True}
    assert schema_outcomes(True, {"uuid_extension": False})[
        "uuid-extension-enabled-in-postgresql"] is False
    assert schema_outcomes(False, {"uuid_extension": True})[
        "uuid-extension-enabled-in-postgresql"] is False
