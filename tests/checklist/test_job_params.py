"""Typed job parameters: the API, the Run button and `manage.py run_job` take only what a kind
declares, typed and bounded; a lead-only parameter from a member is 403; nothing a run passes
names a lead's setting."""
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from checklist import actions, jobs, params
from checklist.api import new_token
from checklist.models import AuditEvent, TaskRun
from checks import registry

from .factories import sign_off_through

pytestmark = pytest.mark.django_db

TARGET = "postgres://checker:s3cret-Target-pw@db.example.com:5432/mingus"


@pytest.fixture
def open_migration(runbook, users):
    """Pre-Deployment signed off (Migration open, where the connectivity items are) and a
    target set: check-connectivity may run."""
    sign_off_through(runbook, 1, users["member"], users["lead"])
    actions.set_target(users["lead"], runbook, TARGET)
    runbook.refresh_from_db()
    return runbook


def post_job(client, user, runbook, body):
    key = new_token(user, "t")
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(reverse("api-runbook-jobs", args=[runbook.pk]), data=raw,
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.parametrize("body,named", [
    ({"kind": "check-connectivity", "params": {"url": "postgres://x@evil/db"}}, "'url'"),
    ({"kind": "check-connectivity", "params": {"sslmode": "disable"}}, "'sslmode'"),
    ({"kind": "check-connectivity", "params": {"require_tls": False}}, "'require_tls'"),
    ({"kind": "check-connectivity", "params": {"max_p95_ms": 99999}}, "'max_p95_ms'"),
    ({"kind": "check-connectivity", "params": {"samples": 0}}, "'samples'"),
    ({"kind": "check-connectivity", "params": {"samples": 10**20}}, "'samples'"),
    ({"kind": "check-connectivity", "params": {"samples": "many"}}, "'samples'"),
    ({"kind": "check-connectivity", "params": {"samples": True}}, "'samples'"),
    ({"kind": "check-connectivity", "params": {"samples": 2.5}}, "'samples'"),
    ({"kind": "check-connectivity", "params": {"samples": [5]}}, "'samples'"),
    ({"kind": "check-connectivity", "params": "samples=5"}, "'params'"),
    ({"kind": "check-connectivity", "params": [["samples", 5]]}, "'params'"),
])
def test_api_refuses_unknown_ill_typed_and_out_of_bounds_parameters_naming_them(
        client, users, open_migration, body, named):
    response = post_job(client, users["member"], open_migration, body)
    assert response.status_code == 400, response.content
    assert named in response.json()["error"]
    assert not TaskRun.objects.exists()
    denied = AuditEvent.objects.get(action="denied", after__attempted="job:check-connectivity")
    assert named in denied.after["reason"] and "evil" not in json.dumps(denied.after)


@pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"backup"', b"{", b'{"kind": 7}',
                                 b'{"params": {}}'])
def test_api_refuses_a_body_that_is_not_a_job_object(client, users, runbook, raw):
    response = post_job(client, users["member"], runbook, raw)
    assert response.status_code == 400
    assert "kind" in response.json()["error"]
    assert not TaskRun.objects.exists()


def test_unknown_parameter_of_a_kind_without_parameters_is_400(client, users, runbook):
    response = post_job(client, users["member"], runbook, {"kind": "backup",
                                                            "params": {"dest": "x"}})
    assert response.status_code == 400
    assert response.json()["error"] == "Unknown parameter 'dest' for backup (it takes: none)."


def test_member_passing_a_lead_only_parameter_is_403_and_a_lead_may(client, users,
                                                                    open_migration):
    body = {"kind": "check-connectivity", "params": {"pool_size": 5, "samples": "7"}}
    refused = post_job(client, users["member"], open_migration, body)
    assert refused.status_code == 403
    assert "pool_size" in refused.json()["error"]
    assert not TaskRun.objects.exists()
    started = post_job(client, users["lead"], open_migration, body)
    assert started.status_code == 202, started.content
    run = TaskRun.objects.get()
    # Typed on the way in: the string "7" became the integer 7.
    assert run.params == {"pool_size": 5, "samples": 7}
    member_ok = {"kind": "check-connectivity", "params": {"samples": 3}}
    TaskRun.objects.update(state=TaskRun.CANCELLED)
    assert post_job(client, users["member"], open_migration, member_ok).status_code == 202


def test_run_button_takes_no_undeclared_field(client, users, runbook):
    client.force_login(users["member"])
    response = client.post(reverse("job-run", args=[runbook.pk, "check-env"]),
                           {"param.path": "/etc/shadow", "rev": "3"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "Unknown parameter &#x27;path&#x27;" in response.content.decode()
    assert "/etc/shadow" not in response.content.decode()
    assert not TaskRun.objects.exists()
    ok = client.post(reverse("job-run", args=[runbook.pk, "check-env"]), {"param.format": "env",
                                                                            "rev": "3"},
                     HTTP_HX_REQUEST="true")
    assert ok.status_code == 200
    assert TaskRun.objects.get().params == {"format": "env"}


def test_run_job_command_refuses_a_bad_parameter_with_exit_2(users, open_migration):
    with pytest.raises(CommandError) as bad:
        call_command("run_job", open_migration.pk, "check-connectivity", "--param",
                     "url=postgres://x@evil/db", "--user", "member")
    assert bad.value.returncode == 2 and "'url'" in str(bad.value)
    with pytest.raises(CommandError) as bounds:
        call_command("run_job", open_migration.pk, "check-connectivity", "--param",
                     "samples=100000", "--user", "member")
    assert bounds.value.returncode == 2 and "from 1 to 1000" in str(bounds.value)
    with pytest.raises(CommandError) as lead_only:
        call_command("run_job", open_migration.pk, "check-connectivity", "--param",
                     "pool_size=3", "--user", "member")
    assert lead_only.value.returncode == 1 and "lead" in str(lead_only.value)
    assert not TaskRun.objects.exists()
    call_command("run_job", open_migration.pk, "check-connectivity", "--param", "samples=4",
                 "--user", "member")
    assert TaskRun.objects.get().params == {"samples": 4}


# What a run may never pass: anything that decides what is checked, where, or whether it passes.
SETTING_NAMES = {"url", "http_url", "host", "dsn", "sslmode", "require_tls", "ca_file", "queries",
                 "sqlite", "schemas", "rules", "path", "schema", "paths", "health_path",
                 "secret_key_pattern", "api_prefix", "command"}


def _is_setting(name):
    return (name in SETTING_NAMES or name.startswith(("max_", "min_"))
            or name.endswith(("_ms", "_pct", "_path", "_file", "_url", "_days", "_seconds")))


def test_no_kind_declares_a_parameter_that_names_a_setting():
    for kind in jobs.kinds().values():
        for param in kind.params:
            assert isinstance(param, params.Param), kind.name
            assert not _is_setting(param.name), f"{kind.name}: {param.name}"
            if kind.name.startswith("check-"):
                check = registry.get(kind.name.removeprefix("check-"))
                option = check.option(param.name)
                assert option is not None and option.kind not in ("path", "json"), param.name
            if param.type in ("int", "float"):
                assert param.min is not None and param.max is not None, param.name
