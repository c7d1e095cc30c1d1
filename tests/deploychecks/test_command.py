"""`manage.py check_deploy`: listing, summaries, JSON, and exit codes that mean something."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from .assertions import assert_no_secret

ROOT = Path(__file__).resolve().parents[2]
REPO_SPEC = ROOT / "app-spec.yaml"
WEAK_ENV = "DATABASE_URL=postgres://app:Cmd-Db-Pw-5512@db:5432/app\nSECRET_KEY=changeme\n"


def run(*args):
    out = io.StringIO()
    call_command("check_deploy", *args, stdout=out)
    return out.getvalue()


def manage(*args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mingus_deploy.settings_test"}
    return subprocess.run([sys.executable, "manage.py", "check_deploy", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_list_names_every_check_and_its_options():
    out = run("--list")
    for name in ("env", "app-spec", "connectivity", "performance", "http"):
        assert f"\n{name} " in "\n" + out
    assert "--pool-size" in out and "--ca-file" in out


def test_list_json_is_the_registry():
    data = json.loads(run("--list", "--json"))
    assert [c["name"] for c in data] == ["env", "app-spec", "connectivity", "performance", "http"]
    assert {"name", "kind", "help", "default", "required"} == set(data[0]["options"][0])


def test_passing_check_prints_a_summary():
    out = run("app-spec", "--path", str(REPO_SPEC))
    assert out.startswith("app-spec: ") and "PASS" in out
    assert "health_checks" in out and "ok" in out


def test_failing_check_exits_1_and_names_what_failed(tmp_path):
    path = tmp_path / "prod.env"
    path.write_text(WEAK_ENV)
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("check_deploy", "env", "--path", str(path), stdout=out)
    assert caught.value.returncode == 1
    text = out.getvalue()
    assert "FAIL" in text and "SECRET_KEY" in text and "postgres://app:***@db:5432/app" in text
    assert_no_secret(text, "Cmd-Db-Pw-5512", "changeme")


def test_json_output_is_the_report(tmp_path):
    path = tmp_path / "prod.env"
    path.write_text(WEAK_ENV)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("check_deploy", "env", "--path", str(path), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["name"] == "env" and data["ok"] is False
    assert any(c["name"] == "SECRET_KEY" and not c["ok"] for c in data["criteria"])
    assert_no_secret(out.getvalue(), "Cmd-Db-Pw-5512")


def test_json_flag_before_the_check_name_works():
    data = json.loads(run("--json", "app-spec", "--path", str(REPO_SPEC)))
    assert data["ok"] is True


def test_missing_file_exits_2(tmp_path):
    with pytest.raises(CommandError) as caught:
        run("app-spec", "--path", str(tmp_path / "gone.yaml"))
    assert caught.value.returncode == 2 and "gone.yaml" in str(caught.value)


def test_rule_options_arrive_as_data(tmp_path):
    path = tmp_path / "prod.env"
    path.write_text("DB_POOL_SIZE=5\n")
    out = run("env", "--path", str(path), "--json", "--rules",
              '{"database_url": null, "secrets": null, "one_of": null, '
              '"equals": {"FLASK_ENV": null, "DB_POOL_SIZE": "5"}}')
    assert [c["name"] for c in json.loads(out)["criteria"]] == ["env_file", "DB_POOL_SIZE"]


@pytest.mark.parametrize("args, code", [
    (["app-spec", "--path", str(REPO_SPEC)], 0),
    (["app-spec", "--path", "/nonexistent/app-spec.yaml"], 2),
    (["connectivity", "--url", "mysql://u:Cli-Pw-0001@127.0.0.1/x"], 2),
    (["connectivity"], 2),  # required --url missing: argparse's own exit code
    ([], 2),
])
def test_exit_codes_from_the_shell(args, code):
    result = manage(*args)
    assert result.returncode == code, result.stderr
    assert_no_secret(result.stdout + result.stderr, "Cli-Pw-0001")


def test_failed_check_exits_1_from_the_shell(tmp_path):
    path = tmp_path / "prod.env"
    path.write_text(WEAK_ENV)
    result = manage("env", "--path", str(path))
    assert result.returncode == 1
    assert_no_secret(result.stdout + result.stderr, "Cmd-Db-Pw-5512")


def test_connectivity_from_the_shell_never_prints_the_password(tls_postgres):
    result = manage("connectivity", "--url", tls_postgres.url(), "--ca-file",
                    str(tls_postgres.ca_file), "--pool-size", "5", "--json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert json.loads(result.stdout)["figures"]["tls"] is True
    assert_no_secret(result.stdout + result.stderr, tls_postgres.password)
    wrong = manage("connectivity", "--url", tls_postgres.url(password="Cli-Wrong-Pw-22"))
    assert wrong.returncode == 1 and "authentication failed" in wrong.stdout
    assert_no_secret(wrong.stdout + wrong.stderr, "Cli-Wrong-Pw-22", tls_postgres.password)
