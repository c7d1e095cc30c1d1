"""The app-spec check against this repository's app-spec.yaml and spoiled copies of it."""
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from checks import app_spec
from checks.report import CheckInputError

from .assertions import assert_no_secret, criterion

REPO_SPEC = Path(__file__).resolve().parents[2] / "app-spec.yaml"
LEAKED = "k3Y-PlainText-Secret-Committed-By-Mistake-0042"


def test_schema_file_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(app_spec.load_schema())


def test_this_apps_spec_passes():
    report = app_spec.run(REPO_SPEC)
    assert report.ok, [p.to_dict() for p in report.problems]
    assert report.figures["components"] == 4  # web, worker, beat, migrate
    assert report.figures["databases"] == 2


def test_this_apps_spec_describes_what_the_app_needs():
    spec = yaml.safe_load(REPO_SPEC.read_text())
    web = spec["services"][0]
    assert (web["name"], web["http_port"], web["health_check"]["http_path"]) == (
        "web", 8080, "/healthz")
    # ASGI, so the live pages stream (server-sent events), with a database pool per process.
    assert "gunicorn mingus_deploy.asgi --worker-class uvicorn_worker.UvicornWorker" in web[
        "run_command"]
    assert {e["key"]: e["value"] for e in web["envs"]}["DATABASE_POOL"] == "true"
    runs = {w["name"]: w["run_command"] for w in spec["workers"]}
    assert runs["worker"].startswith("celery -A mingus_deploy worker")
    assert runs["beat"].startswith("celery -A mingus_deploy beat")
    assert spec["jobs"][0]["kind"] == "PRE_DEPLOY"
    assert "manage.py migrate" in spec["jobs"][0]["run_command"]
    engines = {d["name"]: (d["engine"], d.get("production")) for d in spec["databases"]}
    assert engines["db"] == ("PG", True)
    assert engines["redis"][0] in ("REDIS", "VALKEY")
    envs = {e["key"]: e for e in spec["envs"]}
    assert envs["DATABASE_URL"]["value"] == "${db.DATABASE_URL}"
    assert envs["CELERY_BROKER_URL"]["value"] == "${redis.DATABASE_URL}"
    assert envs["SECRET_KEY"]["type"] == "SECRET" and "value" not in envs["SECRET_KEY"]
    assert envs["DEBUG"]["value"] == "false"
    assert envs["ALLOWED_HOSTS"]["value"] == "${APP_DOMAIN}"


def spoil(tmp_path, edit) -> Path:
    spec = yaml.safe_load(REPO_SPEC.read_text())
    edit(spec)
    path = tmp_path / "app-spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def line_of(path: Path, needle: str, after: int = 0) -> int:
    """1-based number of the first line at or after `after` containing `needle`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if number >= after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def findings(report, name):
    return {(p.path, p.line) for p in report.problems if p.criterion == name}


def test_spoiled_spec_fails_with_paths_and_lines(tmp_path):
    def edit(spec):
        web = spec["services"][0]
        web["databases"] = [{"name": "db2", "engine": "PG"}]  # misplaced: belongs at the top
        del web["health_check"]
        web["envs"] = [{"key": "API_SECRET", "value": LEAKED}]
        spec["databases"].append({"name": "analytics", "engine": "PG"})  # bound by nothing
    path = spoil(tmp_path, edit)
    report = app_spec.run(path)
    assert not report.ok
    failed = {c.name for c in report.criteria if not c.ok}
    assert failed == {"schema", "health_checks", "plain_text_secrets", "databases_referenced"}

    web_line = line_of(path, "- name: web")
    assert ("services[0].databases", line_of(path, "databases:", web_line)) in findings(
        report, "schema")
    misplaced = next(p for p in report.problems if p.path == "services[0].databases")
    assert "top level" in misplaced.message
    assert ("services[0].health_check", web_line) in findings(report, "health_checks")
    assert ("services[0].envs[0].value", line_of(path, "value: " + LEAKED)) in findings(
        report, "plain_text_secrets")
    assert ("services[0].envs[0].type", line_of(path, "key: API_SECRET")) in findings(
        report, "plain_text_secrets")
    assert ("databases[2]", line_of(path, "- name: analytics")) in findings(
        report, "databases_referenced")
    assert_no_secret(report, LEAKED)


def test_instance_count_with_autoscaling_is_a_finding(tmp_path):
    def edit(spec):
        spec["services"][0]["autoscaling"] = {"min_instance_count": 2, "max_instance_count": 4,
                                              "metrics": {"cpu": {"percent": 70}}}
    path = spoil(tmp_path, edit)
    report = app_spec.run(path)
    assert [c.name for c in report.criteria if not c.ok] == ["scaling"]
    assert ("services[0].instance_count", line_of(path, "instance_count: 2")) in findings(
        report, "scaling")


def test_schema_catches_wrong_values_and_unknown_keys(tmp_path):
    def edit(spec):
        spec["databases"][0]["engine"] = "POSTGRES"
        spec["envs"][3]["scope"] = "ALWAYS"
        spec["workers"][0]["http_port"] = 8080  # only services listen
        spec["services"][0]["helth_check"] = {"http_path": "/healthz"}
    path = spoil(tmp_path, edit)
    report = app_spec.run(path)
    paths = {p.path: p for p in report.problems if p.criterion == "schema"}
    assert set(paths) == {"databases[0].engine", "envs[3].scope", "workers[0].http_port",
                          "services[0].helth_check"}
    assert "PG" in paths["databases[0].engine"].message
    assert "only services" in paths["workers[0].http_port"].message
    assert paths["databases[0].engine"].line == line_of(path, "engine: POSTGRES")


def test_dangling_reference_and_duplicate_names(tmp_path):
    def edit(spec):
        spec["envs"][1]["value"] = "${cache.DATABASE_URL}"
        spec["workers"][1]["name"] = "worker"
    report = app_spec.run(spoil(tmp_path, edit))
    assert not criterion(report, "references_resolve").ok
    assert not criterion(report, "components").ok
    assert not criterion(report, "databases_referenced").ok  # redis is no longer bound


def test_yaml_syntax_error_is_a_finding_with_its_line(tmp_path):
    path = tmp_path / "app-spec.yaml"
    path.write_text("name: x\nservices:\n  - name: web\n    envs: [\n")
    report = app_spec.run(path)
    assert not report.ok
    assert criterion(report, "yaml").ok is False
    assert report.problems[0].line is not None


def test_duplicate_yaml_keys_are_found(tmp_path):
    path = tmp_path / "app-spec.yaml"
    path.write_text(REPO_SPEC.read_text().replace("region: nyc\n", "region: nyc\nregion: fra\n"))
    report = app_spec.run(path)
    assert findings(report, "yaml") == {("region", line_of(path, "region: fra"))}


def test_missing_file_is_unusable_input(tmp_path):
    with pytest.raises(CheckInputError, match="file not found"):
        app_spec.run(tmp_path / "nope.yaml")


def test_report_is_json_serialisable():
    assert json.loads(json.dumps(app_spec.run(REPO_SPEC).to_dict()))["ok"] is True


def test_a_spec_without_scaling_fails_scaling(tmp_path):
    def edit(spec):
        for component in spec["services"] + spec["workers"]:
            component.pop("instance_count", None)
            component.pop("autoscaling", None)
    report = app_spec.run(spoil(tmp_path, edit))
    assert [c.name for c in report.criteria if not c.ok] == ["scaling"]
    assert {"services[0]", "workers[0]"} <= {p.path for p in report.problems
                                            if p.criterion == "scaling"}


def test_a_spec_without_services_fails_health_checks(tmp_path):
    def edit(spec):
        spec.pop("services")
    report = app_spec.run(spoil(tmp_path, edit))
    failed = {c.name for c in report.criteria if not c.ok}
    assert "health_checks" in failed
    assert any("no service" in p.message for p in report.problems if p.criterion == "health_checks")
