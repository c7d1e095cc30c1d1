"""The app-spec check: is this DigitalOcean App Platform `app-spec.yaml` valid and safe?

Two layers. The JSON Schema in `schemas/app_spec.schema.json` catches wrong types, unknown
values and misplaced keys (additionalProperties is false everywhere). The rules below catch what
a schema cannot say well: a service with no health check, a secret committed in plain text, a
database nothing binds to, a bindable reference to nothing, instance_count beside autoscaling,
duplicate component names. Every finding names the YAML path and line.
"""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from . import secret_values
from .report import CheckInputError, CheckReport
from .spec_file import SpecSyntaxError, format_path, load_spec, read_text

SCHEMA_PATH = Path(__file__).parent / "schemas" / "app_spec.schema.json"

COMPONENT_KINDS = ("services", "workers", "jobs", "static_sites", "functions")
SOURCE_KEYS = ("git", "github", "gitlab", "bitbucket", "image")
# Variables App Platform defines for the whole app, usable as ${APP_DOMAIN} anywhere.
APP_WIDE_VARIABLES = {"APP_DOMAIN", "APP_URL", "APP_ID"}

CRITERIA = (
    "yaml", "schema", "health_checks", "plain_text_secrets", "databases_referenced",
    "references_resolve", "scaling", "components",
)


def load_schema(path=None) -> dict:
    """The app spec JSON Schema (ours by default)."""
    schema_path = Path(path) if path else SCHEMA_PATH
    try:
        return json.loads(read_text(schema_path))
    except ValueError as exc:
        raise CheckInputError(f"cannot read schema {schema_path}: {exc.__class__.__name__}") from exc


def run(path, schema=None, secret_key_pattern=secret_values.DEFAULT_SECRET_KEY_PATTERN) -> CheckReport:
    """Validate the app spec at `path`. Raises CheckInputError when the file cannot be read."""
    report = CheckReport("app-spec", target=str(path), options={"path": str(path),
                                                                  "schema": schema})
    schema_doc = load_schema(schema)
    try:
        spec = load_spec(path)
    except SpecSyntaxError as exc:
        report.add("yaml", False, "does not parse", "valid YAML", str(exc))
        report.problem(str(exc), "yaml", "", exc.line)
        return report.finish()

    for parts in spec.duplicate_keys:
        report.problem(f"key '{parts[-1]}' is given twice; YAML keeps only the last",
                       "yaml", format_path(parts), spec.line(parts))
    _conclude(report, "yaml", "parses", "valid YAML, no duplicate keys")

    for error in sorted(jsonschema.Draft202012Validator(schema_doc).iter_errors(spec.data),
                        key=lambda e: [str(p) for p in e.absolute_path]):
        for parts, message in _schema_findings(error, schema_doc):
            report.problem(message, "schema", format_path(parts), spec.line(parts))
    _conclude(report, "schema", "valid", "valid against the App Platform spec schema")

    data = spec.data if isinstance(spec.data, dict) else {}
    components = list(_components(data))
    envs = list(_envs(data, components))
    _check_health(report, spec, components)
    _check_secrets(report, spec, envs, secret_key_pattern)
    _check_databases(report, spec, data, envs)
    _check_references(report, spec, data, components, envs)
    _check_scaling(report, spec, components)
    _check_components(report, spec, data, components)

    report.figures = {
        "components": len(components),
        "databases": len(_list(data.get("databases"))),
        "envs": len(envs),
        "findings": len(report.problems),
    }
    return report.finish()


def _conclude(report: CheckReport, name: str, ok_text: str, expected: str) -> None:
    """Add criterion `name`, failing with the count of findings filed under it."""
    found = [p for p in report.problems if p.criterion == name]
    report.add(name, not found, f"{len(found)} finding(s)" if found else ok_text, expected,
               "; ".join(f"{p.path or '(top)'} line {p.line}: {p.message}" for p in found[:5]))


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _components(data: dict):
    """(kind, index, component dict) for every component that is a mapping."""
    for kind in COMPONENT_KINDS:
        for index, component in enumerate(_list(data.get(kind))):
            if isinstance(component, dict):
                yield kind, index, component


def _envs(data: dict, components):
    """(path parts, env dict) for app-level envs and every component's envs."""
    for index, env in enumerate(_list(data.get("envs"))):
        if isinstance(env, dict):
            yield ("envs", index), env
    for kind, cindex, component in components:
        for index, env in enumerate(_list(component.get("envs"))):
            if isinstance(env, dict):
                yield (kind, cindex, "envs", index), env


def _schema_findings(error, schema_doc):
    """(path parts, message) for one schema error; never echoes an env value."""
    parts = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        for key in sorted(k for k in error.instance if k not in allowed):
            yield parts + (key,), _unknown_key_message(key, parts, schema_doc)
        return
    in_value = any(p in ("value", "envs") for p in parts if isinstance(p, str))
    if error.validator == "type":
        found = type(error.instance).__name__
        yield parts, f"must be of type {error.validator_value}, found {found}" + (
            "; quote it in YAML" if error.validator_value == "string" else "")
    elif error.validator == "enum":
        shown = "" if in_value else f" (found {error.instance!r})"
        yield parts, f"must be one of {', '.join(map(str, error.validator_value))}{shown}"
    elif error.validator == "pattern":
        shown = "" if in_value and parts[-1:] == ("value",) else f" ({error.instance!r})"
        yield parts, f"does not match the required pattern {error.validator_value}{shown}"
    elif error.validator == "required":
        yield parts, error.message
    elif error.validator in ("minimum", "maximum", "minLength"):
        yield parts, f"{error.validator} is {error.validator_value}, found {error.instance!r}"
    else:
        yield parts, f"fails schema rule '{error.validator}'"


def _unknown_key_message(key: str, parts: tuple, schema_doc: dict) -> str:
    top_keys = set(schema_doc.get("properties", {}))
    defs = schema_doc.get("$defs", {})
    service_keys = set(defs.get("service", {}).get("properties", {}))
    worker_keys = set(defs.get("worker", {}).get("properties", {}))
    if parts and key in top_keys:
        return f"unknown key '{key}' here: it belongs at the top level of the spec"
    if parts and parts[0] in ("workers", "jobs") and key in service_keys - worker_keys:
        return f"unknown key '{key}' here: only services take it"
    if not parts and (key in service_keys):
        return f"unknown key '{key}' at the top level: it belongs inside a component"
    return f"unknown key '{key}' (misspelt or misplaced)"


def _check_health(report, spec, components) -> None:
    if not any(kind == "services" for kind, _, _ in components):
        report.problem("no service: nothing serves traffic, so no health check is configured",
                       "health_checks", "services", spec.line(()))
    for kind, index, component in components:
        if kind == "services" and not component.get("health_check"):
            parts = (kind, index)
            report.problem(f"service '{component.get('name')}' has no health_check; App Platform "
                           "would only check that the port accepts TCP connections",
                           "health_checks", format_path(parts + ("health_check",)),
                           spec.line(parts))
    _conclude(report, "health_checks", "every service has one",
              "at least one service, each with a health_check")


def _check_secrets(report, spec, envs, pattern) -> None:
    for parts, env in envs:
        for field, message in secret_values.spec_env_findings(env, pattern):
            report.problem(message, "plain_text_secrets", format_path(parts + (field,)),
                           spec.line(parts + (field,)) or spec.line(parts))
    _conclude(report, "plain_text_secrets", "none", "secrets only as type: SECRET, EV[...] or ${...}")


def _check_databases(report, spec, data, envs) -> None:
    referenced = {ref.split(".", 1)[0] for _, env in envs
                  for ref in secret_values.references(env.get("value")) if "." in ref}
    for index, database in enumerate(_list(data.get("databases"))):
        if not isinstance(database, dict):
            continue
        name = database.get("name")
        if name not in referenced:
            parts = ("databases", index)
            report.problem(f"database '{name}' is not referenced by any env "
                           f"(e.g. ${{{name}.DATABASE_URL}}): nothing would connect to it",
                           "databases_referenced", format_path(parts), spec.line(parts))
    _conclude(report, "databases_referenced", "every database is bound",
              "each database referenced as ${name.VAR}")


def _check_references(report, spec, data, components, envs) -> None:
    names = {c.get("name") for _, _, c in components}
    names |= {d.get("name") for d in _list(data.get("databases")) if isinstance(d, dict)}
    app_keys = {e.get("key") for e in _list(data.get("envs")) if isinstance(e, dict)}
    for parts, env in envs:
        for ref in secret_values.references(env.get("value")):
            target, dot, _ = ref.partition(".")
            if dot and target != "_self" and target not in names:
                report.problem(f"${{{ref}}} refers to '{target}', which is no component or "
                               "database of this app", "references_resolve",
                               format_path(parts + ("value",)), spec.line(parts + ("value",)))
            elif not dot and ref not in APP_WIDE_VARIABLES and ref not in app_keys:
                report.problem(f"${{{ref}}} is neither an app-wide variable "
                               f"({', '.join(sorted(APP_WIDE_VARIABLES))}) nor an app-level env",
                               "references_resolve", format_path(parts + ("value",)),
                               spec.line(parts + ("value",)))
    _conclude(report, "references_resolve", "all resolve", "every ${...} names something defined")


def _check_scaling(report, spec, components) -> None:
    scaled = [(k, i, c) for k, i, c in components if k in ("services", "workers")]
    if not scaled:
        report.problem("no service or worker: there is nothing to scale", "scaling", "services",
                       spec.line(()))
    for kind, index, component in components:
        parts = (kind, index)
        autoscaling = component.get("autoscaling")
        if kind in ("services", "workers") and autoscaling is None \
                and "instance_count" not in component:
            report.problem(f"{kind[:-1]} '{component.get('name')}' declares no scaling: set "
                           "instance_count or autoscaling", "scaling", format_path(parts),
                           spec.line(parts))
        if isinstance(autoscaling, dict) and not (
                isinstance(autoscaling.get("min_instance_count"), int)
                and isinstance(autoscaling.get("max_instance_count"), int)):
            report.problem("autoscaling needs min_instance_count and max_instance_count",
                           "scaling", format_path(parts + ("autoscaling",)),
                           spec.line(parts + ("autoscaling",)))
        if autoscaling is not None and "instance_count" in component:
            report.problem("instance_count and autoscaling are mutually exclusive: keep one",
                           "scaling", format_path(parts + ("instance_count",)),
                           spec.line(parts + ("instance_count",)))
        if isinstance(autoscaling, dict):
            low, high = autoscaling.get("min_instance_count"), autoscaling.get("max_instance_count")
            if isinstance(low, int) and isinstance(high, int) and low > high:
                report.problem(f"autoscaling min_instance_count {low} exceeds max {high}",
                               "scaling", format_path(parts + ("autoscaling",)),
                               spec.line(parts + ("autoscaling",)))
    _conclude(report, "scaling", "declared on every service and worker",
              "instance_count or autoscaling (not both) on every service and worker")


def _check_components(report, spec, data, components) -> None:
    seen = {}
    named = [(k, i, c) for k, i, c in components]
    named += [("databases", i, d) for i, d in enumerate(_list(data.get("databases")))
              if isinstance(d, dict)]
    for kind, index, component in named:
        name = component.get("name")
        if name in seen:
            report.problem(f"component name '{name}' is also used by {seen[name]}",
                           "components", format_path((kind, index, "name")),
                           spec.line((kind, index, "name")))
        else:
            seen[name] = format_path((kind, index))
        sources = [k for k in SOURCE_KEYS if k in component]
        if len(sources) > 1:
            report.problem(f"more than one source ({', '.join(sources)}): give exactly one",
                           "components", format_path((kind, index, sources[1])),
                           spec.line((kind, index, sources[1])))
    _conclude(report, "components", "names unique, one source each",
              "unique names, one source per component")
