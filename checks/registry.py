"""The deployment checks, as data: name -> callable, one-line description and option spec.

The `check_deploy` command builds its arguments from this table, and the job layer runs a
check from a stored dict of options through `run_check`. Adding a check means adding one entry
here; every option listed must be a keyword argument of the check's `run()` (a test holds the
two together).

Option kinds, and what `coerce` accepts for each (strings come from the command line or a form):
    str, path   text
    int, float  a number or its text
    bool        true/false, yes/no, 1/0
    list        a list, or one string (repeat the flag on the command line)
    json        a dict/list, JSON text, or the path of a JSON file (read by the check)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import app_spec, connectivity, env, http, performance, secret_values
from .report import CheckInputError, CheckReport

KINDS = ("str", "path", "int", "float", "bool", "list", "json")


@dataclass(frozen=True)
class Option:
    name: str  # the keyword argument of run(); --name-with-dashes on the command line
    kind: str
    help: str
    default: Any = None
    required: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "help": self.help,
                "default": self.default, "required": self.required}


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[..., CheckReport]
    options: tuple[Option, ...] = field(default_factory=tuple)

    def option(self, name) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "options": [o.to_dict() for o in self.options]}


_PG_URL = Option("url", "str", "target PostgreSQL URL (postgres://user:pass@host:port/db)",
                 required=True)
_CA = Option("ca_file", "path", "CA certificate file: verify the server (verify-full)")

CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("env", "Environment variables: DATABASE_URL, DB_POOL_SIZE, DB_SSL_MODE, secrets, "
                 "production mode", env.run, (
        Option("path", "path", "env file (KEY=VALUE lines) or app spec YAML", required=True),
        Option("rules", "json", "rule overrides (JSON object or file) laid over the defaults"),
        Option("component", "str", "app spec only: check app-level envs plus this component's"),
        Option("format", "str", "auto (by file suffix), env or spec", "auto"),
    )),
    Check("app-spec", "App Platform app-spec.yaml: schema, health checks, secrets, bindings, "
                      "scaling", app_spec.run, (
        Option("path", "path", "the app-spec.yaml", required=True),
        Option("schema", "path", "a JSON Schema to use instead of the bundled one"),
        Option("secret_key_pattern", "str", "regex for env names that hold secrets",
               secret_values.DEFAULT_SECRET_KEY_PATTERN),
    )),
    Check("connectivity", "Target PostgreSQL: connect, TLS in use, pool of DB_POOL_SIZE, "
                          "latency, max_connections headroom", connectivity.run, (
        _PG_URL, _CA,
        Option("sslmode", "str", "libpq sslmode (default: require, or verify-full with a CA)"),
        Option("pool_size", "int", "connections to open at once (DB_POOL_SIZE)", 20),
        Option("samples", "int", "SELECT 1 round trips to time", 50),
        Option("connect_timeout", "int", "seconds", 10),
        Option("max_p95_ms", "float", "round-trip p95 threshold", 100.0),
        Option("min_server_version", "int", "lowest acceptable PostgreSQL major version", 13),
        Option("instances", "int", "app instances that will each open a pool", 1),
        Option("require_tls", "bool", "fail unless the session is encrypted", True),
        Option("pool_timeout", "float", "seconds to wait for the pool to fill", 30.0),
    )),
    Check("performance", "Query baseline on the target (p50/p95/max), SQLite before/after, "
                         "pool utilization", performance.run, (
        _PG_URL, _CA,
        Option("sslmode", "str", "libpq sslmode"),
        Option("queries", "list", "extra SQL queries to time (repeatable)"),
        Option("default_queries", "bool", "derive PK lookups, FK joins, counts from the schema",
               True),
        Option("schemas", "list", "PostgreSQL schemas to derive queries from (default: all)"),
        Option("sqlite", "list", "SQLite source file, optionally =schema (repeatable)"),
        Option("iterations", "int", "runs per query", 20),
        Option("max_p95_ms", "float", "per-query p95 threshold", 100.0),
        Option("concurrency", "int", "threads sharing the pool", 10),
        Option("pool_size", "int", "pool size P for the utilization test", 20),
        Option("pool_requests", "int", "queries run through the pool", 200),
        Option("max_pool_utilization_pct", "float", "max in-use/P threshold", 80.0),
        Option("connect_timeout", "int", "seconds", 10),
    )),
    Check("http", "Deployed site: health, security headers, TLS certificate, HTTP->HTTPS, "
                  "bounded load", http.run, (
        Option("url", "str", "https:// base URL of the deployed app", required=True),
        Option("health_path", "str", "health endpoint", "/healthz"),
        Option("http_url", "str", "the http:// URL that must redirect to https"),
        _CA,
        Option("timeout", "float", "seconds per request", 5.0),
        Option("paths", "list", "pages and API paths for the load test (repeatable)", ["/"]),
        Option("concurrency", "int", "concurrent clients", 10),
        Option("requests", "int", "total requests", 100),
        Option("time_cap", "float", "seconds before the load test stops sending", 30.0),
        Option("page_p95_ms", "float", "p95 threshold for pages", 2000.0),
        Option("api_p95_ms", "float", "p95 threshold for API paths", 500.0),
        Option("api_prefix", "str", "paths starting with this are API calls", "/api/"),
        Option("max_error_rate_pct", "float", "error rate threshold", 1.0),
        Option("min_cert_days", "int", "fewest days the certificate must still be valid", 14),
        Option("min_hsts_seconds", "int", "shortest acceptable HSTS max-age", 15768000),
    )),
)}


def get(name: str) -> Check:
    """The check called `name`; CheckInputError for an unknown name."""
    try:
        return CHECKS[name]
    except KeyError:
        raise CheckInputError(f"unknown check {name!r}: one of {', '.join(CHECKS)}") from None


def checks_as_data() -> list[dict]:
    """Every check with its options, as plain data (for --list --json and the job layer)."""
    return [c.to_dict() for c in CHECKS.values()]


def coerce(check: Check, raw: dict) -> dict:
    """Typed keyword arguments for `check.run` from `raw` (strings or values).

    Unknown names, missing required options and values of the wrong kind raise CheckInputError.
    Options left out (or None) are left to run()'s own defaults.
    """
    kwargs = {}
    for name, value in raw.items():
        option = check.option(name)
        if option is None:
            raise CheckInputError(f"{check.name}: unknown option {name!r}")
        if value is None:
            continue
        kwargs[name] = _coerce_value(check, option, value)
    for option in check.options:
        if option.required and kwargs.get(option.name) in (None, ""):
            raise CheckInputError(f"{check.name}: option {option.name!r} is required")
    return kwargs


def _coerce_value(check, option, value):
    try:
        if option.kind in ("str", "path"):
            return str(value)
        if option.kind == "int":
            return int(value)
        if option.kind == "float":
            return float(value)
        if option.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if option.kind == "list":
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        if option.kind == "json":
            return value
    except (TypeError, ValueError):
        raise CheckInputError(f"{check.name}: option {option.name!r} must be "
                              f"{option.kind}") from None
    raise CheckInputError(f"{check.name}: option {option.name!r} has unknown kind {option.kind}")


def run_check(name: str, **options) -> CheckReport:
    """Run check `name` with `options` (coerced). The one entry point for command and jobs."""
    check = get(name)
    return check.run(**coerce(check, options))
