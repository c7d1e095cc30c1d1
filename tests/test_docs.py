"""Every shell command in docs/*.md is exercised: run for real when it is safe, otherwise parsed by
the very command it names and checked against what it refers to. A command in the docs that
nothing here knows how to exercise fails the suite, so the docs cannot drift from the code."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command, load_command_class

from checklist import jobs
from checklist.models import ChecklistTemplate, Runbook
from checks import app_spec, registry

from .conftest import SEED
from .worker import worker_env

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
SPEC = REPO / "app-spec.yaml"
PGMIGRATE_STEPS = {"backup", "restore", "assess", "schema", "run", "validate", "rollback",
                   "cleanup"}
# Safe to run as they are, in a subprocess on the test database; each must exit 0.
RUN = {
    "python manage.py check_deploy --list",
    "python manage.py check_deploy app-spec --path app-spec.yaml",
    "python manage.py check_deploy app-spec --path app-spec.yaml --json",
    "python manage.py verify_audit",
    "python manage.py migrate --noinput",
}


def doc_commands():
    """(doc name, line) for every command line of every ```sh block."""
    found = []
    for doc in DOCS:
        inside = False
        for line in doc.read_text().splitlines():
            if line.strip().startswith("```"):
                inside = line.strip() == "```sh" if not inside else False
                continue
            if inside and line.strip() and not line.strip().startswith("#"):
                found.append((doc.name, line.strip()))
    return found


COMMANDS = doc_commands()


def test_the_docs_exist_and_hold_commands():
    assert {d.name for d in DOCS} >= {"deploying.md", "running-a-migration.md", "rollback.md",
                                      "troubleshooting.md"}
    assert len(COMMANDS) >= 20


def _parser(app, name):
    return load_command_class(app, name).create_parser("manage.py", name)


APPS = {"check_deploy": "deploychecks", "run_job": "checklist", "verify_audit": "checklist",
        "audit_key": "checklist",
        "import_checklist": "checklist", "start_runbook": "checklist"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("doc,line", COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_each_documented_command_is_exercised(doc, line, users):
    argv = shlex.split(line)
    if line in RUN:
        result = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, env=worker_env(),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return
    if argv[:2] == ["python", "manage.py"]:
        name, args = argv[2], argv[3:]
        if name == "pgmigrate":
            return _pgmigrate(args)
        if name == "import_checklist":
            call_command("import_checklist", str(SEED))
            assert ChecklistTemplate.objects.filter(title__contains="MINGUS").exists()
            return
        if name == "start_runbook":
            call_command("import_checklist", str(SEED))
            template = ChecklistTemplate.objects.get()
            parsed = _parser("checklist", name).parse_args(args)
            call_command("start_runbook", "--template", str(template.pk), "--name",
                         parsed.name, "--user", "lead")
            assert Runbook.objects.get().name == parsed.name
            return
        assert name in APPS, f"{doc}: no test exercises manage.py {name}"
        parsed = _parser(APPS[name], name).parse_args(args)
        if name == "run_job":
            assert parsed.job_kind in jobs.REGISTRY, parsed.job_kind
            for pair in parsed.param:
                key = pair.split("=", 1)[0]
                check = registry.get(parsed.job_kind.removeprefix("check-"))
                assert check.option(key) is not None, pair
        if name == "check_deploy":
            assert parsed.check in registry.CHECKS
        return
    if argv[0] in ("gunicorn", "celery"):
        spec = yaml.safe_load(SPEC.read_text())
        commands = [c.get("run_command") for kind in ("services", "workers", "jobs")
                    for c in spec.get(kind, [])]
        assert line in commands, f"{doc}: {line!r} is not a run_command of app-spec.yaml"
        return
    if argv[0] == "doctl":
        assert argv[1] == "apps" and argv[-2:] == ["--spec", "app-spec.yaml"]
        report = app_spec.run(str(SPEC))
        assert report.ok, [c.to_dict() for c in report.criteria if not c.ok]
        return
    if argv[0] == "curl":
        url = argv[-1]
        assert url.endswith("/healthz")
        from django.test import Client

        assert Client().get("/healthz").status_code == 200
        return
    pytest.fail(f"{doc}: nothing exercises {line!r}")


def _pgmigrate(args):
    assert args and args[0] in PGMIGRATE_STEPS, args
    _parser("migration", "pgmigrate").parse_args(args)


def test_docs_name_every_job_kind_they_mention():
    text = "\n".join(d.read_text() for d in DOCS)
    for kind in re.findall(r"`(check-[a-z-]+|success-criteria)`", text):
        assert kind in jobs.REGISTRY, kind


def test_earned_items_doc_lists_each_proof_binding_under_its_kind():
    """docs/earned-items.md: every binding of mingus-proof.json is in its kind's table row."""
    import json

    text = (REPO / "docs" / "earned-items.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9-]+)`[^\n]*", text, re.M)}
    data = json.loads((jobs.BINDINGS_DIR / "mingus-proof.json").read_text())
    keys = json.loads((jobs.BINDINGS_DIR / "mingus-keys.json").read_text())
    text = {e["key"]: e["text"] for e in keys["items"]}
    for kind, entries in data["bindings"].items():
        assert kind in rows, kind
        for entry in entries:
            item = text[entry if isinstance(entry, str) else entry["key"]]
            assert item in rows[kind], (kind, item)
