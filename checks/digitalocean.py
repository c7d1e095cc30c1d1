"""DigitalOcean through its official client, pydo: the managed PostgreSQL cluster (online,
version, plan, backups, maintenance window, alert policies) and the App Platform app (its spec as
deployed, deployments followed to their end with their logs, rollback, domains and certificates).
Each function takes the client and ids and answers verdicts ({ok, reason, ...}) or raises
CheckInputError; the job layer (deploychecks/proof_jobs.py) records them.

`client(token, endpoint)` is the one place a pydo.Client is made; the endpoint is the API base URL
a lead saved (https://api.digitalocean.com in production, a local server in the tests), so both
run the same code. pydo (azure-core) retries 429 and 5xx answers itself, honouring Retry-After.
Errors come back as CheckInputError in plain words; the token never appears in them.
Plain Python, no Django.
"""
from __future__ import annotations

from .report import CheckInputError

# DigitalOcean's managed database plans: db-s-* are the Basic (Starter) nodes, gd-/so1_5-/m-
# the Professional ones (general purpose, storage and memory optimised).
PLAN_PREFIXES = ("db-s-", "db-intel-", "db-amd-", "gd-", "so1_5-", "m-")


def client(token: str, endpoint: str):
    import pydo

    if not token:
        raise CheckInputError("no DigitalOcean API token is set")
    if not endpoint.startswith(("https://", "http://")):
        raise CheckInputError(f"the DigitalOcean API endpoint is not a URL: {endpoint!r}")
    return pydo.Client(token, endpoint=endpoint.rstrip("/"), retry_total=4,
                       retry_backoff_factor=0.2, timeout=30)


def call(what: str, key: str, fn, *args, **kwargs):
    """answer[key] of one API call, or CheckInputError naming the call and what went wrong."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    try:
        answer = fn(*args, **kwargs)
        if isinstance(answer, dict) and key in answer:
            return answer[key]
        # pydo hands some error answers (a 404's {"id": "not_found", ...}) back as data.
        error = answer.get("id") if isinstance(answer, dict) else None
        raise CheckInputError(f"DigitalOcean {what}: " + (
            "not found (404)" if error == "not_found" else
            f"{error or 'an answer without ' + key!s}"))
    except HttpResponseError as exc:
        status = getattr(exc, "status_code", None)
        meaning = {401: "the API token was refused (401)", 403: "the token may not read this "
                   "(403)", 404: "not found (404)", 429: "rate limited (429), retries exhausted"}
        raise CheckInputError(f"DigitalOcean {what}: "
                              f"{meaning.get(status, f'HTTP {status}')}") from None
    except ServiceRequestError as exc:
        raise CheckInputError(f"DigitalOcean {what}: cannot reach the API "
                              f"({type(exc).__name__})") from None


def database(do, cluster_id: str, min_version: int) -> dict:
    """verdicts {provisioned, plan} of the cluster: online PostgreSQL of at least `min_version`;
    a Basic or Professional plan with its node count."""
    if not cluster_id:
        raise CheckInputError("no database cluster id is set")
    db = call(f"database cluster {cluster_id}", "database", do.databases.get_cluster, cluster_id)
    engine, status = db.get("engine"), db.get("status")
    try:
        version = int(str(db.get("version") or "0").split(".")[0])
    except ValueError:
        version = 0
    problems = [p for p in (
        f"engine is {engine}, not pg" if engine != "pg" else "",
        f"status is {status}, not online" if status != "online" else "",
        f"version {db.get('version')} is older than {min_version}" if version < min_version
        else "") if p]
    size, nodes = db.get("size") or "", int(db.get("num_nodes") or 0)
    plan_ok = size.startswith(PLAN_PREFIXES) and nodes >= 1
    tier = "Basic" if size.startswith("db-s-") else "Professional"
    return {
        "provisioned": {"ok": not problems, "reason": "; ".join(problems) or
                        f"{db.get('name')}: PostgreSQL {db.get('version')} online in "
                        f"{db.get('region')}", "name": db.get("name"), "version": db.get("version"),
                        "status": status},
        "plan": {"ok": plan_ok, "size": size, "nodes": nodes, "reason":
                 f"{tier} plan {size}, {nodes} node(s)" if plan_ok else
                 f"plan {size or '(none)'} with {nodes} node(s) is not a DigitalOcean plan"},
    }


# --- the App Platform app -----------------------------------------------------------------------

COMPONENT_KINDS = ("services", "workers", "jobs", "static_sites", "functions")
# App Platform's instance sizes: apps-s-* (and the legacy basic-*) are Basic, shared CPU;
# apps-d-* (and professional-*) are Professional, dedicated CPU.
BASIC_SIZES, PRO_SIZES = ("apps-s-", "basic-"), ("apps-d-", "professional-")
TERMINAL = ("ACTIVE", "ERROR", "CANCELED", "SUPERSEDED")


def app(do, app_id: str) -> dict:
    """The app as DigitalOcean answers GET /v2/apps/{id}."""
    if not app_id:
        raise CheckInputError("no App Platform app id is set")
    return call(f"app {app_id}", "app", do.apps.get, app_id)


def _envs(spec: dict) -> dict:
    """(component or "app", key) -> env dict, for the app-level envs and every component's."""
    found = {}
    for env in spec.get("envs") or []:
        if isinstance(env, dict) and env.get("key"):
            found[("app", env["key"])] = env
    for kind in COMPONENT_KINDS:
        for component in spec.get(kind) or []:
            for env in (component or {}).get("envs") or []:
                if isinstance(env, dict) and env.get("key"):
                    found[(component.get("name") or kind, env["key"])] = env
    return found


def _components(spec: dict) -> dict:
    return {c.get("name"): c for kind in COMPONENT_KINDS for c in spec.get(kind) or []
            if isinstance(c, dict) and c.get("name")}


def app_settings(found_app: dict, checked: dict, is_secret) -> dict:
    """verdicts {env, size} of the app spec as deployed (the active deployment's, else the app's)
    against the checked app-spec.yaml `checked`: every env key there is deployed with the same
    scope, each secret (typed SECRET there, or named like one: `is_secret(key)`) is typed SECRET,
    plain values are equal; each component runs on the checked Basic or Professional size.
    Values are compared, never reported."""
    deployed = ((found_app.get("active_deployment") or {}).get("spec") or
                found_app.get("spec") or {})
    if not deployed:
        raise CheckInputError("the app has no deployed spec yet (no active deployment)")
    want, have = _envs(checked or {}), _envs(deployed)
    problems = []
    for (where, key), env in sorted(want.items()):
        got = have.get((where, key))
        name = key if where == "app" else f"{where}.{key}"
        if got is None:
            problems.append(f"{name} is missing")
            continue
        secret = env.get("type") == "SECRET" or is_secret(key)
        if secret and got.get("type") != "SECRET":
            problems.append(f"{name} is not typed SECRET")
        elif secret and not got.get("value"):
            problems.append(f"{name} has no value")
        elif not secret and "value" in env and str(env["value"]) != str(got.get("value", "")):
            problems.append(f"{name} differs from app-spec.yaml")
        if (env.get("scope") or "RUN_AND_BUILD_TIME") != (got.get("scope") or "RUN_AND_BUILD_TIME"):
            problems.append(f"{name} has scope {got.get('scope')}, not {env.get('scope')}")
    secrets = sum(1 for e in have.values() if e.get("type") == "SECRET")
    size_problems, sizes = [], {}
    checked_components, deployed_components = _components(checked or {}), _components(deployed)
    for name, component in sorted(deployed_components.items()):
        slug = component.get("instance_size_slug") or ""
        if "instance_size_slug" not in component and "instance_count" not in component:
            continue  # static sites and functions have no instances
        sizes[name] = slug
        want_slug = (checked_components.get(name) or {}).get("instance_size_slug")
        if not slug.startswith(BASIC_SIZES + PRO_SIZES):
            size_problems.append(f"{name} runs on {slug or 'no size'}, not a Basic or "
                                 "Professional size")
        elif want_slug and slug != want_slug:
            size_problems.append(f"{name} runs on {slug}, app-spec.yaml says {want_slug}")
    for name in sorted(set(checked_components) - set(deployed_components)):
        size_problems.append(f"component {name} of app-spec.yaml is not deployed")
    tiers = sorted({"Basic" if s.startswith(BASIC_SIZES) else "Professional"
                    for s in sizes.values() if s.startswith(BASIC_SIZES + PRO_SIZES)})
    return {
        "env": {"ok": bool(want) and not problems, "keys": len(want), "secrets": secrets,
                "problems": problems, "reason": "; ".join(problems[:8]) if problems else
                (f"{len(want)} env key(s) of app-spec.yaml deployed, {secrets} typed SECRET"
                 if want else "app-spec.yaml declares no env")},
        "size": {"ok": bool(sizes) and not size_problems, "sizes": sizes,
                 "problems": size_problems,
                 "reason": "; ".join(size_problems[:8]) if size_problems else
                 (f"{'/'.join(tiers)}: " + ", ".join(f"{n} {s}" for n, s in sizes.items())
                  if sizes else "no component with instances is deployed")},
    }


# --- deployments --------------------------------------------------------------------------------

def _step_errors(deployment: dict) -> list[str]:
    """'component step: message' for every failed step (the innermost, nested steps included)."""
    found = []

    def walk(steps):
        for step in steps or []:
            # A parent step fails because a child did: name the child, which says why.
            failed_child = any(c.get("status") == "ERROR" for c in step.get("steps") or [])
            if step.get("status") == "ERROR" and not failed_child:
                reason = step.get("reason") or {}
                label = " ".join(p for p in (step.get("component_name"),
                                             step.get("message_base") or step.get("name")) if p)
                found.append(f"{label}: {reason.get('message') or reason.get('code') or 'failed'}")
            walk(step.get("steps"))

    walk((deployment.get("progress") or {}).get("steps"))
    return found


def follow(do, app_id: str, deployment_id: str, *, timeout: float, poll: float, sleep,
           on_phase=lambda phase, deployment: None, clock=None) -> dict:
    """Poll the deployment until it ends (ACTIVE, ERROR, CANCELED, SUPERSEDED) or `timeout`
    seconds pass; the last answer, with "timed_out" set when it did not end. `sleep(seconds)` waits
    (and may raise to cancel)."""
    import time

    clock = clock or time.monotonic
    deadline, phase = clock() + timeout, None
    while True:
        deployment = call(f"deployment {deployment_id}", "deployment", do.apps.get_deployment,
                          app_id, deployment_id)
        if deployment.get("phase") != phase:
            phase = deployment.get("phase")
            on_phase(phase, deployment)
        if phase in TERMINAL:
            return {**deployment, "timed_out": False}
        if clock() >= deadline:
            return {**deployment, "timed_out": True}
        sleep(poll)


def logs(do, app_id: str, deployment_id: str, *, max_bytes: int = 1 << 20) -> dict:
    """{BUILD: text, DEPLOY: text} of a deployment: DigitalOcean answers with links to archived log
    files (historic_urls), fetched without the API token, each capped at `max_bytes`."""
    from . import http_request

    texts = {}
    for kind in ("BUILD", "DEPLOY"):
        answer = call(f"{kind.lower()} logs of deployment {deployment_id}", "historic_urls",
                      do.apps.get_logs_aggregate, app_id, deployment_id, type=kind)
        parts = []
        for url in answer or []:
            try:
                # The system's trust store (SSL_CERT_FILE when set), as for any HTTPS peer.
                response = http_request.request(url, context=http_request.tls_context(),
                                                timeout=30, max_body=max_bytes + 1)
            except http_request.RequestFailed as exc:
                raise CheckInputError(f"DigitalOcean {kind.lower()} logs: cannot fetch the "
                                      f"archived log ({exc.kind})") from None
            if response.status != 200:
                raise CheckInputError(f"DigitalOcean {kind.lower()} logs: cannot fetch the "
                                      f"archived log (HTTP {response.status})")
            data = response.body
            parts.append(data[:max_bytes].decode("utf-8", errors="replace") +
                         ("\n[truncated]\n" if len(data) > max_bytes else ""))
        texts[kind] = "".join(parts)
    return texts


def judge_deployment(deployment: dict, timeout: float) -> dict:
    """{ok, phase, reason} of a followed deployment: ACTIVE passes; anything else names its phase
    and cause (the failed steps)."""
    phase = deployment.get("phase")
    if phase == "ACTIVE":
        return {"ok": True, "phase": phase, "reason": f"deployment {deployment.get('id')} is "
                f"ACTIVE ({(deployment.get('progress') or {}).get('success_steps', 0)} steps)"}
    if deployment.get("timed_out"):
        reason = f"still {phase} after {timeout:g}s"
    else:
        errors = _step_errors(deployment)
        reason = f"{phase}" + (f": {'; '.join(errors[:4])}" if errors else "")
    return {"ok": False, "phase": phase, "reason": f"deployment {deployment.get('id')} "
            f"{reason} (cause: {deployment.get('cause') or 'unknown'})"}


def deploy(do, app_id: str, force_build: bool = False) -> dict:
    """Trigger a deployment of the app (POST /v2/apps/{id}/deployments); the new deployment."""
    return call(f"deployment of app {app_id}", "deployment", do.apps.create_deployment, app_id,
                {"force_build": force_build})


def previous_deployment(do, app_id: str, active_id: str) -> dict:
    """The newest deployment before the active one that went live (SUPERSEDED by a later one)."""
    found = call(f"deployments of app {app_id}", "deployments", do.apps.list_deployments, app_id,
                 per_page=50)
    older = [d for d in found if d.get("id") != active_id and d.get("phase") == "SUPERSEDED"]
    if not older:
        raise CheckInputError("DigitalOcean: no earlier deployment of the app went live, nothing "
                              "to roll back to")
    return max(older, key=lambda d: d.get("created_at") or "")


def rollback(do, app_id: str, deployment_id: str) -> dict:
    """Validate, then start a rollback to `deployment_id` (pinned: no deployment replaces it until
    a lead commits or reverts it in DigitalOcean); the rollback deployment."""
    check = call(f"rollback validation of app {app_id}", "valid", lambda: do.apps.validate_rollback(
        app_id, {"deployment_id": deployment_id, "skip_pin": False}))
    if not check:
        raise CheckInputError(f"DigitalOcean refuses the rollback to {deployment_id}")
    return call(f"rollback of app {app_id}", "deployment", do.apps.create_rollback, app_id,
                {"deployment_id": deployment_id, "skip_pin": False})


# --- the database cluster's upkeep ---------------------------------------------------------------

def _when(text):
    import datetime

    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def upkeep(do, cluster_id: str, now, max_backup_age_hours: float = 26) -> dict:
    """verdicts {backups, maintenance} of the cluster: daily backups are being taken (the newest
    is younger than `max_backup_age_hours`) at the configured backup hour; a weekly maintenance
    window is set (day and hour)."""
    if not cluster_id:
        raise CheckInputError("no database cluster id is set")
    db = call(f"database cluster {cluster_id}", "database", do.databases.get_cluster, cluster_id)
    backups = call(f"backups of cluster {cluster_id}", "backups", do.databases.list_backups,
                   cluster_id)
    config = call(f"configuration of cluster {cluster_id}", "config", do.databases.get_config,
                  cluster_id)
    stamps = sorted(t for t in (_when(b.get("created_at")) for b in backups or []) if t)
    newest = stamps[-1] if stamps else None
    age = (now - newest).total_seconds() / 3600 if newest else None
    hour, minute = config.get("backup_hour"), config.get("backup_minute")
    at = f"{int(hour):02d}:{int(minute or 0):02d} UTC" if hour is not None else "the default hour"
    if newest is None:
        backup = {"ok": False, "reason": "the cluster has no backup yet"}
    elif age > max_backup_age_hours:
        backup = {"ok": False, "reason": f"the newest backup is {age:.0f} hours old "
                  f"({newest:%Y-%m-%d %H:%M}); daily backups are not being taken"}
    else:
        backup = {"ok": True, "reason": f"daily backups at {at}: {len(stamps)} kept, the newest "
                  f"{age:.1f} hours old ({newest:%Y-%m-%d %H:%M} UTC)"}
    backup.update({"count": len(stamps), "newest": newest.isoformat() if newest else None})
    window = db.get("maintenance_window") or {}
    if window.get("day") and window.get("hour"):
        maintenance = {"ok": True, "reason": f"maintenance window {window['day']} "
                       f"{window['hour']} UTC" + (" (an update is pending)" if window.get("pending")
                                                   else "")}
    else:
        maintenance = {"ok": False, "reason": "no maintenance window is set on the cluster"}
    maintenance["window"] = {k: window.get(k) for k in ("day", "hour", "pending")}
    return {"backups": backup, "maintenance": maintenance}


# --- alert policies -----------------------------------------------------------------------------

DB_ALERTS = {"cpu": "v1/dbaas/alerts/cpu_alerts",
             "memory": "v1/dbaas/alerts/memory_utilization_alerts",
             "disk": "v1/dbaas/alerts/disk_utilization_alerts"}


def alert_policies(do, cluster_id: str) -> dict:
    """verdicts {memory_disk, monitoring} from the account's alert policies (GET
    /v2/monitoring/alerts, every page): for the cluster, an enabled CPU, memory and disk policy,
    each notifying someone (an email or a Slack channel)."""
    if not cluster_id:
        raise CheckInputError("no database cluster id is set")
    policies, page = [], 1
    while True:
        answer = call("alert policies", "policies", do.monitoring.list_alert_policy,
                      per_page=100, page=page)
        policies += answer
        if len(answer) < 100 or page >= 20:
            break
        page += 1
    found = {}
    for name, kind in DB_ALERTS.items():
        mine = [p for p in policies if p.get("type") == kind and cluster_id in
                (p.get("entities") or [])]
        usable = [p for p in mine if p.get("enabled") and (
            (p.get("alerts") or {}).get("email") or (p.get("alerts") or {}).get("slack"))]
        if usable:
            p = usable[0]
            found[name] = {"ok": True, "reason": f"{name} alert {p.get('compare')} "
                           f"{p.get('value')} over {p.get('window')}", "uuid": p.get("uuid")}
        else:
            found[name] = {"ok": False, "reason": f"no {name} alert policy for the cluster" if
                           not mine else f"the {name} alert policy is disabled or notifies nobody"}

    def joined(names):
        return {"ok": all(found[n]["ok"] for n in names),
                "reason": "; ".join(found[n]["reason"] for n in names),
                "policies": {n: found[n] for n in names}}

    return {"memory_disk": joined(("memory", "disk")), "monitoring": joined(("cpu", "memory",
                                                                             "disk"))}


# --- domains and certificates --------------------------------------------------------------------

def domains(found_app: dict, now, min_cert_days: int) -> dict:
    """verdicts {domain, certificate} of the app's custom domains (PRIMARY and ALIAS): each ACTIVE;
    each certificate valid for at least `min_cert_days` more days, TLS 1.2 at least."""
    custom = [d for d in found_app.get("domains") or []
              if (d.get("spec") or {}).get("type") in ("PRIMARY", "ALIAS")]
    if not custom:
        none = {"ok": False, "reason": "the app has no custom domain (mark the item not "
                "applicable if it needs none)"}
        return {"domain": dict(none), "certificate": dict(none)}
    not_live, certs = [], []
    for d in custom:
        name = (d.get("spec") or {}).get("domain")
        if d.get("phase") != "ACTIVE":
            not_live.append(f"{name} is {d.get('phase')}")
        expires = _when(d.get("certificate_expires_at"))
        tls = (d.get("spec") or {}).get("minimum_tls_version") or "1.2"
        if expires is None:
            certs.append((False, f"{name} has no certificate"))
        else:
            days = (expires - now).total_seconds() / 86400
            certs.append((days >= min_cert_days and tls in ("1.2", "1.3"),
                          f"{name} certificate valid {days:.0f} more days" +
                          (f" (fewer than {min_cert_days})" if days < min_cert_days else "") +
                          f", TLS {tls}+"))
    names = ", ".join((d.get("spec") or {}).get("domain") for d in custom)
    return {"domain": {"ok": not not_live, "domains": names,
                       "reason": "; ".join(not_live) or f"{names} ACTIVE"},
            "certificate": {"ok": all(ok for ok, _ in certs) and not not_live,
                            "reason": "; ".join(r for _, r in certs)}}
