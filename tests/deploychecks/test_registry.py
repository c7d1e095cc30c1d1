"""The registry: the data the command and the job layer run checks from."""
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from checks import registry
from checks.report import CheckInputError

REPO_SPEC = Path(__file__).resolve().parents[2] / "app-spec.yaml"


def test_lists_the_five_checks():
    assert list(registry.CHECKS) == ["env", "app-spec", "connectivity", "performance", "http"]
    assert json.loads(json.dumps(registry.checks_as_data()))[0]["options"][0]["name"] == "path"


@pytest.mark.parametrize("check", list(registry.CHECKS.values()), ids=list(registry.CHECKS))
def test_every_option_is_a_run_keyword_with_the_same_default(check):
    parameters = inspect.signature(check.run).parameters
    for option in check.options:
        assert option.kind in registry.KINDS
        assert option.name in parameters, f"{check.name}.run() has no {option.name}"
        default = parameters[option.name].default
        if option.required:
            assert default is inspect.Parameter.empty
        elif option.default is not None:
            expected = list(default) if isinstance(default, tuple) else default
            assert option.default == expected, option.name
    required = [n for n, p in parameters.items() if p.default is inspect.Parameter.empty]
    assert set(required) == {o.name for o in check.options if o.required}


def test_coerce_turns_text_into_typed_options():
    check = registry.get("connectivity")
    kwargs = registry.coerce(check, {"url": "postgres://h/db", "pool_size": "12",
                                     "require_tls": "no", "max_p95_ms": "50.5", "sslmode": None})
    assert kwargs == {"url": "postgres://h/db", "pool_size": 12, "require_tls": False,
                      "max_p95_ms": 50.5}
    assert registry.coerce(registry.get("http"), {"url": "https://x/", "paths": "/a"})[
        "paths"] == ["/a"]


@pytest.mark.parametrize("name, raw, message", [
    ("nope", {}, "unknown check"),
    ("connectivity", {"url": "postgres://h/db", "colour": "red"}, "unknown option"),
    ("connectivity", {}, "'url' is required"),
    ("connectivity", {"url": "postgres://h/db", "pool_size": "many"}, "must be int"),
    ("connectivity", {"url": "postgres://h/db", "require_tls": "perhaps"}, "must be bool"),
])
def test_bad_options_are_unusable_input(name, raw, message):
    with pytest.raises(CheckInputError, match=message):
        registry.run_check(name, **raw)


def test_run_check_runs_the_named_check():
    report = registry.run_check("app-spec", path=str(REPO_SPEC))
    assert report.name == "app-spec" and report.ok


def test_checks_run_without_django():
    # The job layer and the CLI share these modules; they must not need a configured Django.
    code = ("import sys, checks.registry; "
            "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_SPEC.parent,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr or "deploychecks imported Django"
