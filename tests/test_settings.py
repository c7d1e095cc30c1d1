"""Settings: safe defaults, production refuses to start without a SECRET_KEY, check --deploy clean."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIT_KEY = "cHJvZHVjdGlvbi1saWtlLWF1ZGl0LWtleS0wMTIzNDU="


def manage(*args, env_extra=None, tmp_path=None):
    # A clean environment: none of the test settings' own defaults leak into the child.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    env["MINGUS_VAR_DIR"] = str(tmp_path)
    env["AUDIT_SIGNING_KEY"] = AUDIT_KEY
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def test_production_needs_a_secret_key(tmp_path):
    result = manage("check", tmp_path=tmp_path)
    assert result.returncode == 2
    # One line that names the setting, not a traceback.
    assert result.stderr.strip().splitlines() == [
        "manage.py: configuration error: SECRET_KEY must be set when DEBUG is off (set DEBUG=true "
        "for local development)."]


def test_production_needs_an_audit_signing_key(tmp_path):
    result = manage("check", tmp_path=tmp_path,
                    env_extra={"SECRET_KEY": "k" * 50, "AUDIT_SIGNING_KEY": ""})
    assert result.returncode != 0
    assert "AUDIT_SIGNING_KEY must be set when DEBUG is off" in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_debug_makes_an_audit_key_once_readable_only_by_its_owner(tmp_path):
    code = "from django.conf import settings; print(settings.AUDIT_SIGNING_KEY)"
    env = {"DEBUG": "true", "AUDIT_SIGNING_KEY": ""}
    first = manage("shell", "-v", "0", "-c", code, tmp_path=tmp_path, env_extra=env)
    second = manage("shell", "-v", "0", "-c", code, tmp_path=tmp_path, env_extra=env)
    assert first.stdout.strip() and first.stdout == second.stdout, first.stderr
    assert (tmp_path / "dev_audit_signing_key").stat().st_mode & 0o777 == 0o600


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path, env_extra={
        "SECRET_KEY": "x" * 20 + "-production-grade-secret-key-0123456789-abcdefgh",
        "ALLOWED_HOSTS": "mingus.example.com",
        "DATABASE_URL": "postgres://root@127.0.0.1:5432/postgres",
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_is_off_unless_asked_for(tmp_path):
    result = manage("shell", "-v", "0", "-c", "from django.conf import settings; print(settings.DEBUG, "
                    "settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)",
                    tmp_path=tmp_path, env_extra={"SECRET_KEY": "k" * 50})
    assert result.stdout.split() == ["False", "django.db.backends.sqlite3", "filesystem://"]


def test_seed_demo_refuses_without_debug_or_force(tmp_path):
    env = {"SECRET_KEY": "k" * 50}
    assert manage("migrate", "-v", "0", tmp_path=tmp_path, env_extra=env).returncode == 0
    refused = manage("seed_demo", tmp_path=tmp_path, env_extra=env)
    assert refused.returncode == 2 and "DEBUG" in refused.stderr
    forced = manage("seed_demo", "--force", "--password", "pw-123456", tmp_path=tmp_path,
                    env_extra=env)
    assert forced.returncode == 0 and "pw-123456" in forced.stdout
    for user in ("member", "lead", "lead2", "auditor"):
        assert user in forced.stdout


@pytest.mark.django_db
def test_security_headers(client, users):
    client.force_login(users["member"])
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    # The admin ships inline scripts of its own: django-csp leaves it to Django's defaults.
    client.force_login(users["admin"])
    assert "Content-Security-Policy" not in client.get("/admin/")


def test_logs_are_json_lines_in_production_and_never_hold_a_password(tmp_path):
    import json as _json

    result = manage("shell", "-v", "0", "-c",
                    "import logging; logging.getLogger('mingus').warning("
                    "'cannot reach postgres://app:Sup3rSecret@db:5432/x', extra={'run': 7})",
                    tmp_path=tmp_path, env_extra={"SECRET_KEY": "k" * 50})
    line = next(l for l in result.stderr.splitlines() if l.startswith("{"))
    record = _json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "mingus" and record["run"] == 7
    assert "Sup3rSecret" not in line and "app:***@db" in record["message"]


def test_an_unmigrated_or_unreachable_database_is_one_line_and_exit_2(tmp_path):
    env = {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    fresh = manage("start_runbook", "--template", "1", "--name", "x", tmp_path=tmp_path, env_extra=env)
    assert fresh.returncode == 2
    assert fresh.stderr.strip().splitlines() == [
        "manage.py: database error: no such table: checklist_checklisttemplate (has 'manage.py "
        "migrate' been run on this database?)"]
    env["DATABASE_URL"] = "postgres://root:pw-never-shown@127.0.0.1:1/x"
    down = manage("start_runbook", "--template", "1", "--name", "x", tmp_path=tmp_path, env_extra=env)
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert down.stderr.startswith("manage.py: database error: connection failed")
    assert "pw-never-shown" not in down.stderr + down.stdout
