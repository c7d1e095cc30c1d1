"""The report shape, redaction and percentiles every check relies on."""
import json

from checks.latency import percentile, summarize_ms
from checks.redact import redact_url, scrub, url_password
from checks.report import CheckReport


def test_report_passes_only_when_every_criterion_passes():
    report = CheckReport("demo")
    assert not report.ok  # no criteria: proves nothing
    report.add("a", True, 1, 2)
    assert report.ok
    report.add("b", False, 3, 2, "too big")
    assert not report.ok


def test_report_dict_has_stable_keys():
    report = CheckReport("demo", target="x")
    report.add("a", True, 12.5, "<= 100 ms")
    report.problem("something", "a", "services[0]", 4)
    report.figures["p95_ms"] = 12.5
    data = json.loads(json.dumps(report.finish().to_dict()))
    assert set(data) == {"report_version", "name", "ok", "target", "started_at", "duration_ms",
                         "options", "criteria", "figures", "problems"}
    assert data["criteria"][0] == {"name": "a", "ok": True, "measured": 12.5,
                                   "expected": "<= 100 ms", "detail": ""}
    assert data["problems"][0] == {"message": "something", "criterion": "a",
                                   "path": "services[0]", "line": 4}
    assert data["figures"]["p95_ms"] == 12.5


def test_redact_url_hides_passwords_only():
    assert redact_url("postgres://user:s3cr%40t@db.example.com:25060/app?sslmode=require") == (
        "postgres://user:***@db.example.com:25060/app?sslmode=require")
    assert redact_url("postgres://user@host/db") == "postgres://user@host/db"
    assert "hunter2" not in redact_url("postgres://host/db?user=u&password=hunter2")
    assert url_password("postgres://u:pw@h/db") == "pw"


def test_scrub_removes_url_passwords_and_known_secrets():
    text = "failed for postgres://me:topsecret@h:5432/db and token abc123def"
    cleaned = scrub(text, "abc123def")
    assert "topsecret" not in cleaned and "abc123def" not in cleaned
    assert "postgres://me:***@h:5432/db" in cleaned


def test_percentiles_are_observed_values():
    samples = list(range(1, 101))
    assert percentile(samples, 50) == 50
    assert percentile(samples, 95) == 95
    assert percentile([], 95) is None
    summary = summarize_ms([3.0, 1.0, 2.0])
    assert (summary["count"], summary["p50_ms"], summary["max_ms"]) == (3, 2.0, 3.0)
