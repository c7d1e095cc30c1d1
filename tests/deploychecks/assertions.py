"""Assertions shared by the deploychecks tests."""
import json


def assert_no_secret(report, *secrets):
    """Fail if any secret value appears anywhere in the report's JSON (or in a string)."""
    text = report if isinstance(report, str) else json.dumps(
        report.to_dict() if hasattr(report, "to_dict") else report, default=str)
    for secret in secrets:
        assert secret, "a secret to look for must not be empty"
        assert secret not in text, "a secret value leaked into the report"


def criterion(report, name):
    """The criterion `name` of a report, failing the test if it is absent."""
    found = report.criterion(name)
    assert found is not None, f"no criterion {name!r} in {[c.name for c in report.criteria]}"
    return found
