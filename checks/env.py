"""The env check: are the production environment variables what the runbook asks for?

Reads an env file (KEY=VALUE lines) or an App Platform spec (its app-level and component
`envs`) and applies rules. The rules are data, so a runbook can change them without code:
`DEFAULT_RULES` holds the seed checklist's values and `merge_rules` lays a runbook's overrides
(a dict, or a JSON file) over them, one level deep; an override of `null` removes a rule.

    database_url  the PostgreSQL URL variable and what it must contain
    equals        variables that must hold exactly this value (DB_POOL_SIZE=20, FLASK_ENV=...)
    one_of        variables that must hold one of these values (DB_SSL_MODE)
    secrets       required secrets and what makes a secret weak; every variable whose name
                  looks secret (key_pattern) is checked too, not only the required ones

Secret values never reach the report: only presence, length and strength.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import secret_values
from .redact import redact_url
from .report import CheckInputError, CheckReport
from .spec_file import SpecSyntaxError, format_path, load_spec, read_text

# libpq sslmodes in increasing strictness; anything at or after "require" encrypts.
SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

DEFAULT_RULES = {
    "database_url": {
        "key": "DATABASE_URL",
        "schemes": ["postgres", "postgresql"],
        "require": ["host", "port", "database"],
    },
    "equals": {
        "DB_POOL_SIZE": "20",
        "FLASK_ENV": "production",
    },
    "one_of": {
        "DB_SSL_MODE": ["require", "verify-ca", "verify-full"],
    },
    "secrets": {
        "required": ["SECRET_KEY"],
        "min_length": 32,
        "min_distinct": 8,
        "defaults": secret_values.DEFAULT_DEFAULT_VALUES,
        "placeholder_markers": secret_values.DEFAULT_PLACEHOLDER_MARKERS,
        "key_pattern": secret_values.DEFAULT_SECRET_KEY_PATTERN,
    },
}


@dataclass
class EnvValue:
    """One occurrence of a variable: where it was written and what it holds."""

    key: str
    value: object
    where: str  # the key in an env file, or a spec path such as "services[0].envs[2]"
    line: int | None
    secret_type: bool = False  # App Platform `type: SECRET`


def merge_rules(overrides=None) -> dict:
    """DEFAULT_RULES with `overrides` (a dict, a JSON file path or JSON text) laid over them."""
    rules = copy.deepcopy(DEFAULT_RULES)
    if overrides in (None, "", {}):
        return rules
    if isinstance(overrides, (str, Path)):
        overrides = _load_rules(overrides)
    if not isinstance(overrides, dict):
        raise CheckInputError("env rules must be a JSON object")
    for section, value in overrides.items():
        if value is None:
            rules.pop(section, None)
        elif isinstance(value, dict) and isinstance(rules.get(section), dict):
            for key, inner in value.items():
                if inner is None:
                    rules[section].pop(key, None)
                else:
                    rules[section][key] = inner
        else:
            rules[section] = value
    return rules


def _load_rules(source) -> dict:
    text = str(source).strip()
    name, body = ("inline rules", text) if text.startswith("{") else (str(source), read_text(source))
    try:
        return json.loads(body)
    except ValueError as exc:
        raise CheckInputError(f"{name}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc


def _shown_rules(rules: dict) -> dict:
    """The rules as a report may show them: a value expected of a secret is itself secret."""
    pattern = (rules.get("secrets") or {}).get("key_pattern",
                                                secret_values.DEFAULT_SECRET_KEY_PATTERN)
    shown = copy.deepcopy(rules)
    for section in ("equals", "one_of"):
        for key in list(shown.get(section) or {}):
            if secret_values.looks_secret(key, pattern):
                shown[section][key] = "***"
    return shown


def parse_env_file(text: str):
    """(values, bad_lines) from KEY=VALUE text; later definitions win, as in a shell."""
    values: dict[str, EnvValue] = {}
    bad = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            bad.append(number)
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) >= 2:
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = EnvValue(key, value, key, number)
    return values, bad


def run(path, rules=None, component=None, format="auto") -> CheckReport:
    """Check the variables in `path` (env file or app spec) against the rules.

    `rules`: overrides of DEFAULT_RULES (dict, JSON file or JSON text). `component`: for a spec,
    only the app-level envs and this component's. `format`: "auto" (by suffix), "env", "spec".
    """
    rules = merge_rules(rules)
    report = CheckReport("env", target=str(path), options={
        "path": str(path), "component": component, "format": format,
        "rules": _shown_rules(rules)})
    kind = format
    if kind == "auto":
        kind = "spec" if str(path).lower().endswith((".yaml", ".yml")) else "env"
    if kind not in ("env", "spec"):
        raise CheckInputError(f"unknown format {format!r}: use auto, env or spec")

    databases = {}
    plain_text_findings = None
    if kind == "env":
        values, bad = parse_env_file(read_text(path))
        occurrences = {k: [v] for k, v in values.items()}
        for number in bad:
            report.problem("not a KEY=VALUE line", "env_file", "", number)
        report.add("env_file", not bad, f"{len(bad)} unreadable line(s)" if bad else "parses",
                   "KEY=VALUE lines")
    else:
        try:
            spec = load_spec(path)
        except SpecSyntaxError as exc:
            report.add("env_file", False, "does not parse", "valid YAML", str(exc))
            report.problem(str(exc), "env_file", "", exc.line)
            return report.finish()
        occurrences, databases, plain_text_findings = _spec_envs(spec, component,
                                                                 rules.get("secrets", {}))

    report.figures["format"] = kind
    report.figures["variables"] = len(occurrences)
    _check_database_url(report, rules.get("database_url"), occurrences, databases, rules)
    for key, expected in (rules.get("equals") or {}).items():
        _check_value(report, key, occurrences.get(key, []), [str(expected)], "equals", rules)
    for key, allowed in (rules.get("one_of") or {}).items():
        _check_value(report, key, occurrences.get(key, []), [str(a) for a in allowed], "one of",
                     rules)
    ruled = set(rules.get("equals") or {}) | set(rules.get("one_of") or {})
    _check_secrets(report, rules.get("secrets") or {}, occurrences, ruled)
    if plain_text_findings is not None:
        for where, line, message in plain_text_findings:
            report.problem(message, "plain_text_secrets", where, line)
        report.add("plain_text_secrets", not plain_text_findings,
                   f"{len(plain_text_findings)} finding(s)" if plain_text_findings else "none",
                   "secrets only as type: SECRET, EV[...] or ${...}")
    return report.finish()


def _spec_envs(spec, component, secret_rules):
    data = spec.data if isinstance(spec.data, dict) else {}
    groups = [(("envs",), data.get("envs"))]
    found_component = component is None
    for kind in ("services", "workers", "jobs", "static_sites", "functions"):
        items = data.get(kind) if isinstance(data.get(kind), list) else []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            if component is None or item.get("name") == component:
                found_component = True
                groups.append(((kind, index, "envs"), item.get("envs")))
    if not found_component:
        raise CheckInputError(f"{spec.path}: no component named {component!r}")
    occurrences: dict[str, list[EnvValue]] = {}
    findings = []
    pattern = secret_rules.get("key_pattern", secret_values.DEFAULT_SECRET_KEY_PATTERN)
    for prefix, envs in groups:
        for index, env in enumerate(envs if isinstance(envs, list) else []):
            if not isinstance(env, dict) or "key" not in env:
                continue
            parts = prefix + (index,)
            key = str(env["key"])
            value = env.get("value")
            occurrences.setdefault(key, []).append(EnvValue(
                key, None if value is None else str(value), format_path(parts),
                spec.line(parts), env.get("type") == "SECRET"))
            for field, message in secret_values.spec_env_findings(env, pattern):
                findings.append((format_path(parts + (field,)),
                                 spec.line(parts + (field,)) or spec.line(parts), message))
    databases = {d.get("name"): d for d in data.get("databases") or [] if isinstance(d, dict)}
    return occurrences, databases, findings


def _where(occurrences) -> str:
    return ", ".join(o.where for o in occurrences)


def _check_database_url(report, rule, occurrences, databases, rules) -> None:
    if not rule:
        return
    key = rule.get("key", "DATABASE_URL")
    found = occurrences.get(key, [])
    if not found:
        report.add(key, False, "missing", "a PostgreSQL URL")
        report.problem(f"{key} is not set", key)
        return
    schemes = [s.lower() for s in rule.get("schemes", ["postgres", "postgresql"])]
    required = rule.get("require", ["host", "port", "database"])
    allowed_ssl = (rules.get("one_of") or {}).get("DB_SSL_MODE") or SSL_MODES[3:]
    failures, shown = [], []
    for occurrence in found:
        value = occurrence.value
        if value is None or value == "":
            failures.append((occurrence, "empty" if occurrence.value == "" else
                             "declared without a value here (set outside the spec)"))
            shown.append("no value")
            continue
        if secret_values.is_encrypted(value):
            # The URL itself cannot be read; the connectivity check tests it for real.
            shown.append("encrypted (EV[...])")
            continue
        refs = secret_values.references(value)
        if refs and secret_values.is_reference_only(value):
            target = refs[0].split(".", 1)[0]
            database = databases.get(target)
            if database is None:
                failures.append((occurrence, f"binds ${{{refs[0]}}} but the spec has no "
                                             f"database named '{target}'"))
            elif str(database.get("engine", "")).upper() != "PG":
                failures.append((occurrence, f"binds database '{target}' whose engine is "
                                             f"{database.get('engine')}, not PG"))
            shown.append(f"${{{refs[0]}}}")
            continue
        shown.append(redact_url(value))
        failures.extend((occurrence, reason) for reason in
                        _url_failures(value, schemes, required, allowed_ssl))
    for occurrence, reason in failures:
        report.problem(f"{key} {reason}", key, occurrence.where, occurrence.line)
    report.add(key, not failures, "; ".join(shown),
               f"{'/'.join(schemes)} URL with {', '.join(required)}",
               "; ".join(reason for _, reason in failures))


def _url_failures(value, schemes, required, allowed_ssl) -> list[str]:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return ["is not a parsable URL"]
    reasons = []
    scheme = parts.scheme.lower().split("+", 1)[0]  # SQLAlchemy: postgresql+psycopg2://
    if scheme not in schemes:
        reasons.append(f"has scheme '{parts.scheme}', not {' or '.join(schemes)}")
    if "host" in required and not parts.hostname:
        reasons.append("has no host")
    if "port" in required and not port:
        reasons.append("has no explicit port")
    if "database" in required and not parts.path.strip("/"):
        reasons.append("names no database")
    if "user" in required and not parts.username:
        reasons.append("names no user")
    sslmode = (parse_qs(parts.query).get("sslmode") or [None])[-1]
    if sslmode is not None and sslmode not in allowed_ssl:
        reasons.append(f"sets sslmode={sslmode}, weaker than {'/'.join(allowed_ssl)}")
    return reasons


def _check_value(report, key, found, allowed, relation, rules) -> None:
    pattern = (rules.get("secrets") or {}).get("key_pattern", secret_values.DEFAULT_SECRET_KEY_PATTERN)
    hide = secret_values.looks_secret(key, pattern)
    expected = allowed[0] if relation == "equals" else " | ".join(allowed)
    if hide:  # a rule may name a secret; its expected value is as secret as the variable
        expected = "***"
    if not found:
        report.add(key, False, "missing", expected)
        report.problem(f"{key} is not set (expected {expected})", key)
        return
    failures, shown = [], []
    for occurrence in found:
        value = occurrence.value
        if value is None or secret_values.is_encrypted(value) or secret_values.references(value):
            shown.append("not readable here")
            failures.append((occurrence, "cannot be read from the file (encrypted, bound or "
                                         "unset), so it cannot be verified"))
            continue
        shown.append("***" if hide else value)
        if value.strip() not in allowed:
            failures.append((occurrence, f"is {'***' if hide else repr(value)}, expected "
                                         f"{expected}"))
    for occurrence, reason in failures:
        report.problem(f"{key} {reason}", key, occurrence.where, occurrence.line)
    report.add(key, not failures, "; ".join(dict.fromkeys(shown)), expected,
               "; ".join(reason for _, reason in failures))


def _check_secrets(report, rule, occurrences, ruled=frozenset()) -> None:
    if not rule:
        return
    pattern = rule.get("key_pattern", secret_values.DEFAULT_SECRET_KEY_PATTERN)
    options = {
        "min_length": int(rule.get("min_length", 32)),
        "defaults": rule.get("defaults"),
        "markers": rule.get("placeholder_markers"),
        "min_distinct": int(rule.get("min_distinct", 8)),
    }
    required = list(rule.get("required", []))
    # A variable with a value rule of its own (equals, one_of) is judged there, once.
    others = sorted(k for k in occurrences if k not in required and k not in ruled
                    and secret_values.looks_secret(k, pattern))
    weak_total = 0
    for key in required + others:
        found = occurrences.get(key, [])
        if not found:
            report.add(key, False, "missing", f"set, >= {options['min_length']} chars, not a default")
            report.problem(f"required secret {key} is not set", key)
            continue
        shown, failures = [], []
        for occurrence in found:
            value = occurrence.value
            if (value is None and occurrence.secret_type) or secret_values.is_encrypted(value):
                # App Platform holds the value; presence is all a spec can prove.
                shown.append("held by App Platform (type: SECRET)")
                continue
            if value is not None and secret_values.is_reference_only(value):
                shown.append("bound (${...})")
                continue
            verdict = secret_values.assess(value, **options)
            shown.append(f"{verdict['strength']}, {verdict['length']} chars")
            if verdict["strength"] != "strong":
                failures.append((occurrence, ", ".join(verdict["weaknesses"])))
        weak_total += len(failures)
        for occurrence, reason in failures:
            report.problem(f"secret {key} is weak: {reason}", key, occurrence.where, occurrence.line)
        report.add(key, not failures, "; ".join(dict.fromkeys(shown)),
                   f"set, >= {options['min_length']} chars, not a default",
                   "; ".join(reason for _, reason in failures))
    report.figures["secrets_checked"] = len(required) + len(others)
    report.figures["weak_secrets"] = weak_total
