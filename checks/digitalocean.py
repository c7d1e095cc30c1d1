"""DigitalOcean through its official client, pydo: the managed PostgreSQL cluster the app uses.

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
