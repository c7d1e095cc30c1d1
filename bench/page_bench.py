#!/usr/bin/env python
"""Page latency under 50 concurrent sessions: the runbook page (136 items) and a tick.

Starts gunicorn against a scratch PostgreSQL database (bench_pages_<random>, dropped afterwards),
migrates it, imports the seed from ../shared/seed, creates users and a runbook with the first
three phases signed off (so 52 items are open: one per session), logs 50 sessions in through the
login form, then measures, with every session running at once:

  reference  GET /static/css/app.css and GET /login/ (the floor: the same server, no app work)
  page       GET /runbooks/<id>/            (full page, 136 items)
  tick       POST .../tick/ and .../untick/ (htmx, with CSRF; each session on its own item)

Usage: .venv/bin/python bench/page_bench.py [--sessions 50] [--rounds 10] [--workers 3]
       [--threads 8] [--pg postgres://root@127.0.0.1:5432/postgres] [--keep]
No dependencies beyond the app's: threads with http.client.
"""
import argparse
import http.client
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlparse

REPO = Path(__file__).resolve().parents[1]
SEED = REPO.parent / "shared" / "seed" / "mingus-deployment-checklist.md"
PYTHON = sys.executable

SETUP = r"""
import json, sys
from django.contrib.auth.models import Group, User
from checklist import actions, rules
from checklist.models import ItemState
tpl, _ = actions.import_template(open(sys.argv[1], 'rb').read(), name='MINGUS')
users = {}
for name, role in [('lead', 'lead'), ('lead2', 'lead')] + [(f'm{i:02d}', 'member') for i in range(int(sys.argv[2]))]:
    u = User.objects.create_user(name, password='bench-' + name)
    u.groups.add(Group.objects.get_or_create(name=role)[0])
    users[name] = u
rb = actions.start_runbook(users['lead'], tpl, 'MINGUS production (bench)')
facts = rules.RunbookFacts.load(rb)
for phase in facts.gated[:3]:
    for st in ItemState.objects.filter(runbook=rb, item__group__phase=phase):
        actions.tick(users['lead'], st)
    actions.sign_off(users['lead'], rb, phase, 'bench')
facts = rules.RunbookFacts.load(rb)
open_states = [st.pk for st in facts.states if facts.status(st.item.group.phase_id).is_open and not st.complete]
print('BENCH ' + json.dumps({'runbook': rb.pk, 'states': open_states}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_exec(admin_url, sql):
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


class Session:
    """One browser-like session: its own keep-alive connection and cookies."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # gunicorn closed an idle keep-alive connection; reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return response.status, response.headers, data

    def login(self, username, password):
        status, _, body = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
        status, headers, _ = self.request("POST", "/login/", urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": ""}))
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login of {username} failed: {status}")


def timed(session, method, path, body=None, headers=None, expect=(200,)):
    start = time.perf_counter()
    status, _, data = session.request(method, path, body, headers)
    elapsed = time.perf_counter() - start
    if status not in expect:
        raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
    return elapsed


def run_concurrently(sessions, work):
    """Run work(index, session) in one thread per session, all released at once."""
    barrier = threading.Barrier(len(sessions))
    results, errors = [[] for _ in sessions], []

    def body(i, s):
        try:
            barrier.wait()
            results[i] = work(i, s)
        except Exception as exc:  # reported, and the figures refused
            errors.append(f"session {i}: {exc}")

    threads = [threading.Thread(target=body, args=(i, s)) for i, s in enumerate(sessions)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError("; ".join(errors[:5]))
    return [x for r in results for x in r], wall


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[k]


def summary(name, values, wall):
    ms = [v * 1000 for v in values]
    return {"name": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(pct(ms, 95), 1), "max_ms": round(max(ms), 1),
            "throughput_rps": round(len(ms) / wall, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=max(2, (os.cpu_count() or 2) + 1))
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not SEED.exists():
        sys.exit(f"seed not found: {SEED}")

    dbname = f"bench_pages_{secrets.token_hex(4)}"
    pg = urlparse(args.pg)
    db_url = pg._replace(path="/" + dbname).geturl()
    tmp = Path(tempfile.mkdtemp(prefix="page_bench_"))
    env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY=secrets.token_hex(32), DEBUG="false",
               DJANGO_SETTINGS_MODULE="mingus_deploy.settings", MINGUS_VAR_DIR=str(tmp),
               STATIC_ROOT=str(tmp / "static"), SECURE_SSL_REDIRECT="false",
               SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
               ALLOWED_HOSTS="127.0.0.1,localhost", LOG_LEVEL="WARNING")
    manage = [PYTHON, str(REPO / "manage.py")]
    pg_exec(args.pg, f'CREATE DATABASE "{dbname}"')
    server = None
    try:
        print(f"scratch database {dbname}; migrating and importing the seed ...", file=sys.stderr)
        subprocess.run(manage + ["migrate", "--noinput", "-v0"], env=env, cwd=REPO, check=True)
        subprocess.run(manage + ["collectstatic", "--noinput", "-v0"], env=env, cwd=REPO, check=True)
        out = subprocess.run(manage + ["shell", "-c",
                                       f"import sys; sys.argv=['x', {str(SEED)!r}, '{args.sessions}']\n" + SETUP],
                             env=env, cwd=REPO, check=True, capture_output=True, text=True).stdout
        setup = json.loads(out.split("BENCH ", 1)[1])
        runbook, states = setup["runbook"], setup["states"]
        if len(states) < args.sessions:
            sys.exit(f"only {len(states)} open items for {args.sessions} sessions")

        port = free_port()
        server = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "mingus_deploy.wsgi", "-b", f"127.0.0.1:{port}",
             "-w", str(args.workers), "-k", "gthread", "--threads", str(args.threads),
             "--keep-alive", "30", "--log-level", "warning"],
            env=env, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("gunicorn did not start")
                time.sleep(0.2)

        sessions = [Session(port) for _ in range(args.sessions)]
        for i, s in enumerate(sessions):
            s.login(f"m{i:02d}", f"bench-m{i:02d}")
            s.request("GET", f"/runbooks/{runbook}/")  # warm: worker imports, template cache
        page = f"/runbooks/{runbook}/"
        print(f"gunicorn {args.workers} workers x {args.threads} threads; {args.sessions} sessions "
              f"logged in; {args.rounds} rounds each", file=sys.stderr)

        def reference(i, s):
            out = []
            for _ in range(args.rounds):
                out.append(timed(s, "GET", "/static/css/app.css"))
            return out

        def login_page(i, s):
            return [timed(s, "GET", "/login/") for _ in range(args.rounds)]

        def page_get(i, s):
            return [timed(s, "GET", page) for _ in range(args.rounds)]

        def tick(i, s):
            token = s.cookies["csrftoken"]
            headers = {"X-CSRFToken": token, "HX-Request": "true", "HX-Target": "runbook-body",
                       "HX-Current-URL": f"http://127.0.0.1:{port}{page}"}
            out = []
            state = states[i]
            for r in range(args.rounds):
                verb = "tick" if r % 2 == 0 else "untick"
                out.append(timed(s, "POST", f"/runbooks/{runbook}/items/{state}/{verb}/", "",
                                 headers))
            return out

        results = []
        for name, work in [("reference: GET /static/css/app.css", reference),
                           ("reference: GET /login/", login_page),
                           ("GET runbook page (136 items)", page_get),
                           ("POST tick/untick (htmx, CSRF)", tick)]:
            values, wall = run_concurrently(sessions, work)
            results.append(summary(name, values, wall))

        page_size = len(sessions[0].request("GET", page)[2])
        if args.json:
            print(json.dumps({"sessions": args.sessions, "rounds": args.rounds,
                              "workers": args.workers, "threads": args.threads,
                              "cpus": os.cpu_count(), "page_bytes": page_size,
                              "results": results}, indent=2))
        else:
            print(f"{args.sessions} concurrent sessions x {args.rounds} requests; gunicorn "
                  f"{args.workers}x{args.threads} gthread; {os.cpu_count()} CPUs; page {page_size} bytes")
            print(f"{'':38} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'req/s':>7}")
            for r in results:
                print(f"{r['name']:38} {r['n']:>5} {r['p50_ms']:>9} {r['p95_ms']:>9} "
                      f"{r['max_ms']:>9} {r['throughput_rps']:>7}")
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        if not args.keep:
            pg_exec(args.pg, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
