"""The env check against env files and app specs written in the test's tmp dir."""
import json

import pytest

from checks import env
from checks.report import CheckInputError

from .assertions import assert_no_secret, criterion

STRONG_KEY = "q7Vd2LmX9pR4sT8wZ1yB6nC3fH5jK0aE-uG"  # 35 chars, many distinct
DB_PASSWORD = "Db-Pa55word-Never-Shown-4821"

GOOD_ENV = f"""\
# production settings for MINGUS
DATABASE_URL=postgresql://mingus:{DB_PASSWORD}@db-mingus.example.com:25060/mingus?sslmode=require
DB_POOL_SIZE=20
DB_SSL_MODE=require
export FLASK_ENV=production
SECRET_KEY="{STRONG_KEY}"
"""


def write(tmp_path, text, name="prod.env"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_production_env_file_passes(tmp_path):
    report = env.run(write(tmp_path, GOOD_ENV))
    assert report.ok, [c.to_dict() for c in report.criteria if not c.ok]
    names = [c.name for c in report.criteria]
    assert {"DATABASE_URL", "DB_POOL_SIZE", "DB_SSL_MODE", "FLASK_ENV", "SECRET_KEY"} <= set(names)
    assert criterion(report, "DATABASE_URL").measured == (
        "postgresql://mingus:***@db-mingus.example.com:25060/mingus?sslmode=require")
    assert criterion(report, "SECRET_KEY").measured == f"strong, {len(STRONG_KEY)} chars"
    assert_no_secret(report, DB_PASSWORD, STRONG_KEY)


@pytest.mark.parametrize("replace, failing, why", [
    ("DB_POOL_SIZE=20", "DB_POOL_SIZE", "DB_POOL_SIZE=10"),
    ("DB_SSL_MODE=require", "DB_SSL_MODE", "DB_SSL_MODE=prefer"),
    ("export FLASK_ENV=production", "FLASK_ENV", "FLASK_ENV=development"),
    (f'SECRET_KEY="{STRONG_KEY}"', "SECRET_KEY", "SECRET_KEY=changeme"),
    (f'SECRET_KEY="{STRONG_KEY}"', "SECRET_KEY", "SECRET_KEY=Zx8#kq2LmV9pQ"),  # strong but short
    (f'SECRET_KEY="{STRONG_KEY}"', "SECRET_KEY", ""),
    ("DB_POOL_SIZE=20", "DB_POOL_SIZE", ""),
])
def test_each_seed_rule_fails_when_broken(tmp_path, replace, failing, why):
    report = env.run(write(tmp_path, GOOD_ENV.replace(replace, why)))
    assert not report.ok
    assert [c.name for c in report.criteria if not c.ok] == [failing]
    assert any(p.criterion == failing for p in report.problems)
    assert_no_secret(report, DB_PASSWORD, STRONG_KEY)


def test_weak_secret_is_described_never_shown(tmp_path):
    weak = "your-secret-key-here-please-change!!"  # long enough, but a placeholder
    report = env.run(write(tmp_path, GOOD_ENV.replace(STRONG_KEY, weak)))
    found = criterion(report, "SECRET_KEY")
    assert not found.ok
    assert "placeholder" in found.detail
    assert_no_secret(report, weak)


def test_other_secret_looking_variables_are_checked_too(tmp_path):
    report = env.run(write(tmp_path, GOOD_ENV + "JWT_SECRET_KEY=dev\nSTRIPE_API_KEY=\n"))
    assert not criterion(report, "JWT_SECRET_KEY").ok
    assert not criterion(report, "STRIPE_API_KEY").ok
    assert report.figures["weak_secrets"] == 2
    jwt = next(p for p in report.problems if p.criterion == "JWT_SECRET_KEY")
    assert jwt.line == 7


@pytest.mark.parametrize("url, reason", [
    (f"mysql://mingus:{DB_PASSWORD}@db.example.com:3306/mingus", "scheme 'mysql'"),
    (f"postgresql://mingus:{DB_PASSWORD}@db.example.com/mingus", "no explicit port"),
    (f"postgresql://mingus:{DB_PASSWORD}@db.example.com:25060/", "names no database"),
    (f"postgresql://mingus:{DB_PASSWORD}@db.example.com:25060/mingus?sslmode=disable",
     "sslmode=disable"),
])
def test_database_url_must_be_a_complete_postgresql_url(tmp_path, url, reason):
    text = "\n".join(line if not line.startswith("DATABASE_URL=") else f"DATABASE_URL={url}"
                     for line in GOOD_ENV.splitlines())
    report = env.run(write(tmp_path, text))
    found = criterion(report, "DATABASE_URL")
    assert not found.ok
    assert reason in found.detail
    assert_no_secret(report, DB_PASSWORD)


def test_sqlalchemy_scheme_is_a_postgresql_url(tmp_path):
    report = env.run(write(tmp_path, GOOD_ENV.replace("postgresql://", "postgresql+psycopg2://")))
    assert criterion(report, "DATABASE_URL").ok


def test_unreadable_line_is_reported_with_its_number(tmp_path):
    report = env.run(write(tmp_path, GOOD_ENV + "this is not an assignment\n"))
    assert not criterion(report, "env_file").ok
    assert [p.line for p in report.problems if p.criterion == "env_file"] == [7]


def test_rules_are_data_a_runbook_can_change(tmp_path):
    rules = tmp_path / "rules.json"
    # A Django app: no FLASK_ENV, but DEBUG must be false and a second secret is required.
    rules.write_text(json.dumps({
        "equals": {"FLASK_ENV": None, "DEBUG": "false", "DB_POOL_SIZE": "10"},
        "secrets": {"required": ["SECRET_KEY", "FERNET_KEY"], "min_length": 40},
    }))
    text = (GOOD_ENV.replace("export FLASK_ENV=production\n", "DEBUG=false\n")
            .replace("DB_POOL_SIZE=20", "DB_POOL_SIZE=10") + f"FERNET_KEY={(STRONG_KEY * 2)[:40]}\n")
    report = env.run(write(tmp_path, text), rules=str(rules))
    assert report.criterion("FLASK_ENV") is None
    assert criterion(report, "DEBUG").ok
    assert criterion(report, "DB_POOL_SIZE").ok
    assert criterion(report, "FERNET_KEY").ok  # 40 chars
    assert not criterion(report, "SECRET_KEY").ok  # 35 < 40
    assert report.options["rules"]["secrets"]["min_length"] == 40


def test_a_rule_on_a_secret_keeps_its_expected_value_hidden(tmp_path):
    token = "tok-Expected-Value-7781"
    rules = {"equals": {"API_TOKEN": token}}
    report = env.run(write(tmp_path, GOOD_ENV + f"API_TOKEN={token}\n"), rules=rules)
    assert [c.name for c in report.criteria].count("API_TOKEN") == 1
    found = criterion(report, "API_TOKEN")
    assert found.ok and found.expected == "***" and found.measured == "***"
    assert_no_secret(report, token)
    failing = env.run(write(tmp_path, GOOD_ENV + "API_TOKEN=something-else-entirely\n"),
                      rules=rules)
    assert not criterion(failing, "API_TOKEN").ok
    assert_no_secret(failing, token, "something-else-entirely")


def test_default_rules_hold_the_seed_values():
    rules = env.merge_rules()
    assert rules["equals"] == {"DB_POOL_SIZE": "20", "FLASK_ENV": "production"}
    assert rules["one_of"]["DB_SSL_MODE"] == ["require", "verify-ca", "verify-full"]
    assert rules["secrets"]["min_length"] == 32
    assert {"changeme", "secret", "dev", "your-secret-key"} <= set(rules["secrets"]["defaults"])


SPEC = """\
name: mingus
region: nyc
envs:
  - key: DATABASE_URL
    value: ${db.DATABASE_URL}
  - key: DB_POOL_SIZE
    value: "20"
  - key: DB_SSL_MODE
    value: verify-full
  - key: FLASK_ENV
    value: production
services:
  - name: api
    envs:
      - key: SECRET_KEY
        type: SECRET
        value: EV[1:abcdefabcdef:ZW5jcnlwdGVkLXNlY3JldA==]
      - key: MAIL_PASSWORD
        value: SUPERsecretMailPw-9931
databases:
  - name: db
    engine: PG
"""


def test_app_spec_envs_are_read_and_plain_text_secrets_located(tmp_path):
    report = env.run(write(tmp_path, SPEC, "app-spec.yaml"))
    assert criterion(report, "DATABASE_URL").ok  # bound to the PG database
    assert criterion(report, "SECRET_KEY").ok  # encrypted by App Platform
    leak = criterion(report, "plain_text_secrets")
    assert not leak.ok
    located = {(p.path, p.line) for p in report.problems if p.criterion == "plain_text_secrets"}
    assert ("services[0].envs[1].type", 18) in located  # no type: the entry's line
    assert ("services[0].envs[1].value", 19) in located
    assert_no_secret(report, "SUPERsecretMailPw-9931", "ZW5jcnlwdGVkLXNlY3JldA")


def test_app_spec_binding_to_a_non_postgres_database_fails(tmp_path):
    report = env.run(write(tmp_path, SPEC.replace("engine: PG", "engine: MYSQL"), "spec.yml"))
    found = criterion(report, "DATABASE_URL")
    assert not found.ok and "MYSQL" in found.detail


def test_component_option_limits_the_envs(tmp_path):
    path = write(tmp_path, SPEC, "app-spec.yaml")
    with pytest.raises(CheckInputError, match="no component named 'nope'"):
        env.run(path, component="nope")
    assert env.run(path, component="api").criterion("SECRET_KEY").ok


def test_missing_file_is_unusable_input(tmp_path):
    with pytest.raises(CheckInputError, match="file not found: .*missing.env"):
        env.run(tmp_path / "missing.env")


def test_rules_that_are_not_json_are_unusable_input(tmp_path):
    bad = write(tmp_path, "{not json", "rules.json")
    with pytest.raises(CheckInputError, match="rules.json: not valid JSON"):
        env.run(write(tmp_path, GOOD_ENV), rules=str(bad))
