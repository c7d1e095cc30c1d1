"""A local HTTPS server that answers like DigitalOcean's API for the endpoints the DO jobs use,
with bodies shaped as the API reference (and pydo's docstrings) document them.

    GET  /v2/databases/{uuid}                 {"database": {...}}
    GET  /v2/databases/{uuid}/backups         {"backups": [{created_at, size_gigabytes}]}
    GET  /v2/databases/{uuid}/config          {"config": {backup_hour, backup_minute, ...}}
    GET  /v2/monitoring/alerts                {"policies": [...], "links": {}, "meta": {total}}
    GET  /v2/apps/{id}                        {"app": {spec, active_deployment, domains, ...}}
    GET  /v2/apps/{id}/deployments            {"deployments": [...], "links": {}, "meta": {}}
    POST /v2/apps/{id}/deployments            {"deployment": {...}} (PENDING_BUILD)
    GET  /v2/apps/{id}/deployments/{dep}      {"deployment": {...}}: one phase further per read,
                                              to ACTIVE, or to ERROR when `fail` is set
    GET  /v2/apps/{id}/deployments/{dep}/logs {"historic_urls": [...], "live_url": ""}
    POST /v2/apps/{id}/rollback/validate      {"valid": true, "warnings": []}
    POST /v2/apps/{id}/rollback               {"deployment": {...}}
    GET  /archive/{dep}/{type}.log            the archived log file (no token: a signed URL)

Errors as DO sends them: 401 without the right bearer token, 404 {"id": "not_found"}, and 429
with Retry-After while `throttle` > 0. HTTPS, as pydo's bearer-token policy refuses plain HTTP.
"""
import copy
import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "dop_v1_" + "7f3a" * 16
CLUSTER = "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30"
APP = "4f6c71e2-1e90-4762-9fee-6cc4a0a9f2cf"
REPO = Path(__file__).resolve().parents[2]
PHASES = ("PENDING_BUILD", "BUILDING", "PENDING_DEPLOY", "DEPLOYING", "ACTIVE")
SECRET_VALUE = "EV[1:q2pR0s8TnAq:U2VjcmV0IGluIERPIG9ubHk=]"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def cluster(**changes):
    body = {"id": CLUSTER, "name": "mingus-db", "engine": "pg", "version": "16",
            "num_nodes": 1, "size": "db-s-2vcpu-4gb", "region": "nyc3", "status": "online",
            "created_at": "2026-11-20T10:00:00Z", "storage_size_mib": 61440,
            "maintenance_window": {"day": "tuesday", "hour": "01:00:00", "pending": False,
                                   "description": []},
            "connection": {"protocol": "postgresql", "host": "mingus-db.db.ondigitalocean.com",
                           "port": 25060, "user": "doadmin", "database": "defaultdb",
                           "ssl": True}}
    body.update(changes)
    return {"database": body}


def deployed_spec():
    """This repository's app-spec.yaml as DO holds it once deployed: secrets set, encrypted."""
    spec = yaml.safe_load((REPO / "app-spec.yaml").read_text())
    for env in spec.get("envs", []):
        if env.get("type") == "SECRET":
            env["value"] = SECRET_VALUE
    return spec


def policy(kind, entities=(CLUSTER,), enabled=True, email=("ops@example.com",), value=80):
    return {"uuid": f"{kind.rsplit('/', 1)[-1]}-{len(entities)}", "type": kind,
            "description": f"{kind} above {value}", "compare": "GreaterThan", "value": value,
            "window": "5m", "entities": list(entities), "tags": [], "enabled": enabled,
            "alerts": {"email": list(email), "slack": []}}


def deployment(dep_id, phase, cause, spec, created):
    return {"id": dep_id, "cause": cause, "phase": phase, "spec": spec,
            "created_at": stamp(created), "updated_at": stamp(created),
            "phase_last_updated_at": stamp(created),
            "services": [{"name": "web", "source_commit_hash": "9f1c2d3e"}],
            "progress": {"pending_steps": 0, "running_steps": 0, "success_steps": 0,
                         "error_steps": 0, "total_steps": 3, "steps": []}}


class FakeDO:
    def __init__(self, cert):
        self.clusters, self.requests, self.throttle = {CLUSTER: cluster()}, [], 0
        self.fail = None  # a deployment step that fails: ends the next deployment in ERROR
        self.archive_gone = False
        self.backups = [{"created_at": stamp(now() - datetime.timedelta(hours=h)),
                         "size_gigabytes": 0.42} for h in (3, 27, 51)]
        self.config = {"backup_hour": 3, "backup_minute": 30, "pgbouncer": {}}
        self.policies = [policy(k) for k in ("v1/dbaas/alerts/cpu_alerts",
                                             "v1/dbaas/alerts/memory_utilization_alerts",
                                             "v1/dbaas/alerts/disk_utilization_alerts")]
        self.policies.append(policy("v1/insights/droplet/cpu", entities=("123456",)))
        spec = deployed_spec()
        old_spec = copy.deepcopy(spec)
        old_spec["envs"] = [e for e in old_spec["envs"] if e["key"] != "TRUSTED_PROXY_COUNT"]
        self.deployments = [
            deployment("dep-1-old", "SUPERSEDED", "initial deployment", old_spec,
                       now() - datetime.timedelta(days=2)),
            deployment("dep-2-live", "ACTIVE", "commit 9f1c2d3e pushed to github/main", spec,
                       now() - datetime.timedelta(days=1)),
        ]
        self.reads = {}
        self.app = {
            "id": APP, "owner_uuid": "ff36cbc6-fd350", "spec": spec,
            "default_ingress": "https://mingus-deploy-x7k2p.ondigitalocean.app",
            "live_url": "https://app.mingus.example", "live_domain": "app.mingus.example",
            "region": {"slug": "nyc", "label": "New York"}, "tier_slug": "basic",
            "domains": [
                {"id": "d-default", "phase": "ACTIVE",
                 "spec": {"domain": "mingus-deploy-x7k2p.ondigitalocean.app", "type": "DEFAULT"}},
                {"id": "d-primary", "phase": "ACTIVE",
                 "spec": {"domain": "app.mingus.example", "type": "PRIMARY",
                          "minimum_tls_version": "1.2"},
                 "certificate_expires_at": stamp(now() + datetime.timedelta(days=80))}],
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.route("GET")

            def do_POST(self):
                self.route("POST")

            def route(self, method):
                path = self.path.split("?")[0]
                fake.requests.append((method, self.path, self.headers.get("Authorization")))
                if path.startswith("/archive/"):
                    if fake.archive_gone:  # signed log URLs expire
                        return self.text(404, "NoSuchKey")
                    _, _, dep_id, name = path.split("/")
                    return self.text(200, f"{name.removesuffix('.log')} log of {dep_id}\n"
                                          "step 1 ok\nstep 2 ok\n")
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.answer(401, {"id": "Unauthorized",
                                             "message": "Unable to authenticate you"})
                if fake.throttle:
                    fake.throttle -= 1
                    return self.answer(429, {"id": "too_many_requests",
                                             "message": "API Rate limit exceeded."},
                                       {"Retry-After": "0", "ratelimit-remaining": "0"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                query = parse_qs(urlsplit(self.path).query)
                found = fake.answer(method, path.strip("/").split("/")[1:], body, query)
                if found is None:
                    return self.answer(404, {"id": "not_found", "message": "The resource you "
                                             "were accessing could not be found."})
                return self.answer(200, found)

            def answer(self, status, body, headers=None):
                self.text(status, json.dumps(body), headers, "application/json")

            def text(self, status, text, headers=None, content_type="text/plain"):
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert_file, cert.key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # --- the API ---------------------------------------------------------------------------------

    def answer(self, method, parts, body, query):
        """The body of a 200 answer, or None for 404."""
        if parts[:1] == ["databases"] and len(parts) >= 2:
            if parts[1] not in self.clusters:
                return None
            rest = parts[2:]
            if not rest:
                return self.clusters[parts[1]]
            if rest == ["backups"]:
                return {"backups": self.backups}
            if rest == ["config"]:
                return {"config": self.config}
            return None
        if parts == ["monitoring", "alerts"]:
            return {"policies": self.policies, "links": {},
                    "meta": {"total": len(self.policies)}}
        if parts[:1] == ["apps"] and len(parts) >= 2:
            if parts[1] != APP:
                return None
            return self.app_answer(method, parts[2:], body, query)
        return None

    def active(self):
        return next(d for d in reversed(self.deployments) if d["phase"] == "ACTIVE")

    def app_answer(self, method, rest, body, query):
        if not rest:
            return {"app": {**self.app, "active_deployment": self.active(),
                            "spec": self.active()["spec"]}}
        if rest == ["deployments"] and method == "POST":
            return {"deployment": self.start("manual", self.active()["spec"])}
        if rest == ["deployments"]:
            return {"deployments": list(reversed(self.deployments)), "links": {},
                    "meta": {"total": len(self.deployments)}}
        if rest[:1] == ["deployments"] and len(rest) >= 2:
            dep = next((d for d in self.deployments if d["id"] == rest[1]), None)
            if dep is None:
                return None
            if len(rest) == 2:
                return {"deployment": self.advance(dep)}
            if rest[2:] == ["logs"]:
                kind = query.get("type", ["UNSPECIFIED"])[0]
                return {"historic_urls": [f"{self.url}/archive/{dep['id']}/{kind}.log"],
                        "live_url": ""}
            return None
        if rest == ["rollback", "validate"] and method == "POST":
            ok = any(d["id"] == body.get("deployment_id") for d in self.deployments)
            return {"valid": ok, "warnings": [], **({} if ok else {"error": {
                "code": "invalid_deployment", "message": "no such deployment"}})}
        if rest == ["rollback"] and method == "POST":
            target = next((d for d in self.deployments if d["id"] == body.get("deployment_id")),
                          None)
            if target is None:
                return None
            return {"deployment": self.start("manual rollback", target["spec"],
                                             cloned_from=target["id"])}
        return None

    def start(self, cause, spec, cloned_from=None):
        dep = deployment(f"dep-{len(self.deployments) + 1}-new", "PENDING_BUILD", cause,
                         copy.deepcopy(spec), now())
        if cloned_from:
            dep["cloned_from"] = cloned_from
        self.deployments.append(dep)
        return dep

    def advance(self, dep):
        """One phase further per read, as a deployment moves on between two polls."""
        if dep["phase"] not in PHASES[:-1]:
            return dep
        if self.fail and dep["phase"] == "BUILDING":
            dep["phase"] = "ERROR"
            dep["progress"].update(error_steps=1, steps=[{
                "name": "build", "status": "ERROR", "steps": [{
                    "name": "build", "component_name": "web", "message_base": "Building service",
                    "status": "ERROR", "reason": {"code": "BuildJobExitNonZero",
                                                  "message": self.fail}}]}])
            return dep
        dep["phase"] = PHASES[PHASES.index(dep["phase"]) + 1]
        if dep["phase"] == "ACTIVE":
            for other in self.deployments:
                if other is not dep and other["phase"] == "ACTIVE":
                    other["phase"] = "SUPERSEDED"
            dep["progress"].update(success_steps=3)
        return dep
