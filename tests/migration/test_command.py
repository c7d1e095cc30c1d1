"""``manage.py pgmigrate``: exit codes 0/1/2, --json on stdout, and no password anywhere."""
import json

from .conftest import FIXTURES, copy_fixtures, manage, source_args


def test_clean_step_exits_0_and_prints_its_report_as_json(tmp_path):
    sources = copy_fixtures(tmp_path / "src", {"alerts": "alerts.db", "cache": "cache.db"})
    out = manage("backup", *source_args(sources), "--workdir", tmp_path / "w", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["step"] == "backup" and report["ok"] is True and report["restore_test"]["ok"] is True
    assert any(a.endswith("manifest.json") for a in report["artifacts"])


def test_step_that_finds_problems_exits_1_with_a_readable_summary(tmp_path):
    out = manage("assess", "--source", f"mingus={FIXTURES / 'mingus.db'}",
                 "--source", f"instance={FIXTURES / 'instance-mingus.db'}", "--workdir", tmp_path / "w")
    assert out.returncode == 1, out.stderr
    assert "conflict: table users is in mingus, instance (different shapes)" in out.stdout
    assert "problem(s)" in out.stdout


def test_missing_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "gone.db"
    out = manage("backup", "--source", f"x={missing}", "--workdir", tmp_path / "w")
    assert out.returncode == 2
    assert f"{missing}: no such file" in out.stderr


def test_bad_usage_exits_2(tmp_path):
    out = manage("run", "--workdir", tmp_path / "w")
    assert out.returncode == 2 and "needs at least one --source" in out.stderr
    out = manage("restore", "--workdir", tmp_path / "w", "--json")
    assert out.returncode == 2 and json.loads(out.stdout) == {"ok": False, "error": "restore needs --dest DIR "
                                                              "(where to put the files)", "exit": 2}


def test_unreachable_target_exits_2_and_never_shows_the_password(tmp_path):
    url = "postgres://root:s3cretPW@127.0.0.1:1/x"
    for step in ("run", "validate", "schema"):
        out = manage(step, "--source", f"alerts={FIXTURES / 'alerts.db'}", "--target", url,
                     "--workdir", tmp_path / step, "--json")
        assert out.returncode == 2, (step, out.stdout, out.stderr)
        assert "s3cretPW" not in out.stdout + out.stderr
        assert "postgres://root:***@127.0.0.1:1/x" in out.stderr
        assert json.loads(out.stdout)["exit"] == 2
