#!/usr/bin/env python
"""Page latency under 50 concurrent sessions, and the live pages (server-sent events).

Starts the web server as app-spec.yaml runs it (gunicorn with uvicorn workers, a database pool)
against a scratch PostgreSQL database (bench_pages_<random>, dropped afterwards), migrates it,
imports the seed from ../shared/seed, creates users and a runbook with the first three phases
signed off (so 52 items are open: one per session), logs the sessions in through the login form.

Default mode, every session at once:
  reference  GET /static/css/app.css and GET /login/ (the floor: the same server, no app work)
  page       GET /runbooks/<id>/            (full page, 136 items)
  tick       POST .../tick/ and .../untick/ (htmx, with CSRF; each session on its own item)

--live: every session keeps the runbook page's event stream open while a lead ticks items at 1
and then 5 per second; it prints the tick p95, how long until every other session has the change
(p50/p95 over every session and change, and the p95 of the slowest session per change), the
first-load p95 when all sessions open the page within one second, the server's CPU seconds per
change with 10 and with 50 sessions listening (the gunicorn processes' user+system time over the
run, divided by the changes), and the bytes each session is sent per change.

Usage: .venv/bin/python bench/page_bench.py [--live] [--sessions 50] [--rounds 10] [--workers 2]
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
# The sessions are leads: most open items are job-bound, and only a lead ticks those (override).
for name, role in [('lead', 'lead'), ('lead2', 'lead')] + [(f'm{i:02d}', 'lead') for i in range(int(sys.argv[2]))]:
    u = User.objects.create_user(name, password='bench-' + name)
    u.groups.add(Group.objects.get_or_create(name=role)[0])
    users[name] = u
rb = actions.start_runbook(users['lead'], tpl, 'MINGUS production (bench)')
facts = rules.RunbookFacts.load(rb)
bound = rules.bound_kinds(rb.template_id)
for phase in facts.gated[:3]:
    for st in ItemState.objects.filter(runbook=rb, item__group__phase=phase):
        kinds = bound.get(st.item_id, ())
        if rules.SCHEMA_APPROVAL in kinds:
            actions.mark_not_applicable(users['lead'], st, 'bench')
        elif kinds:  # a job earns it: a lead overrides, saying why
            actions.override(users['lead'], st, 'bench')
        else:
            actions.tick(users['lead'], st)
    actions.sign_off(users['lead'], rb, phase, 'bench')
facts = rules.RunbookFacts.load(rb)
open_states = [[st.pk, st.item_id in bound] for st in facts.states
               if facts.status(st.item.group.phase_id).is_open and not st.complete]
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
    ap.add_argument("--workers", type=int, default=2)  # as app-spec.yaml
    ap.add_argument("--live", action="store_true", help="measure the live pages (see above)")
    ap.add_argument("--ticks", type=int, default=20, help="changes per live run")
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
    import base64

    env = dict(os.environ, DATABASE_URL=db_url, SECRET_KEY=secrets.token_hex(32), DEBUG="false",
               AUDIT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
               AUDIT_DIGEST_DIR=str(Path(tempfile.gettempdir()) / "page_bench_digests"),
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
        # As app-spec.yaml runs the web service (workers as given; keep-alive for the sessions).
        server = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "mingus_deploy.asgi", "--worker-class",
             "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
             "--graceful-timeout", "2", "--keep-alive", "30", "--log-level", "warning"],
            env=dict(env, DATABASE_POOL="true", DATABASE_POOL_MAX="3"), cwd=REPO,
            start_new_session=True)
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
        page = f"/runbooks/{runbook}/"
        if args.live:
            return live_mode(args, port, server, sessions, runbook, states)
        for s in sessions:
            s.request("GET", page)  # warm: worker imports, template cache
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
            state, bound = states[i]
            for r in range(args.rounds):
                verb = ("override" if bound else "tick") if r % 2 == 0 else "untick"
                out.append(timed(s, "POST", f"/runbooks/{runbook}/items/{state}/{verb}/",
                                 "reason=bench", headers))
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
                  f"{args.workers} uvicorn workers; {os.cpu_count()} CPUs; page {page_size} bytes")
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


# --- live mode --------------------------------------------------------------------------------

ROW = re.compile(rb'<li[^>]* id="item-(\d+)"')


class Listener(threading.Thread):
    """One open page's event stream: notes when each event arrived, its size and its rows."""

    def __init__(self, port, cookies, path):
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.cookies, self.path = dict(cookies), path
        self.events = []  # (arrival, bytes, {state ids})
        self.open = threading.Event()
        self.error = None

    def run(self):
        try:
            self.conn.request("GET", self.path, headers={
                "Accept": "text/event-stream",
                "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())})
            response = self.conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"stream answered {response.status}")
            self.open.set()
            size, rows = 0, set()
            while True:
                line = response.readline()
                if not line:
                    return
                size += len(line)
                if line in (b"\n", b"\r\n"):
                    if rows or size > 40:  # an event, not a comment or the retry line
                        self.events.append((time.perf_counter(), size, rows))
                    size, rows = 0, set()
                elif line.startswith(b"data: <li"):
                    rows.update(int(m) for m in ROW.findall(line))
        except Exception as exc:  # closed by us at the end, or a failure to report
            if not getattr(self, "closing", False):
                self.error = exc
            self.open.set()

    def close(self):
        self.closing = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.conn.close()


def server_cpu(server):
    """User+system CPU seconds of the gunicorn master and its workers so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == server.pid or ppid == server.pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def live_run(port, server, sessions, ticker, runbook, states, rate, ticks, checked):
    """Every session listens; the ticker makes `ticks` changes at `rate` per second."""
    events = f"/runbooks/{runbook}/events/?page=runbook&rev=0"
    listeners = [Listener(port, s.cookies, events) for s in sessions]
    for listener in listeners:
        listener.start()
    for listener in listeners:
        if not listener.open.wait(60) or listener.error:
            raise RuntimeError(f"a stream did not open: {listener.error}")
    time.sleep(1.0)  # let the catch-up events of the first connect pass before counting
    for listener in listeners:
        listener.events.clear()
    # As live.js sends a write from a page whose stream is open: answered with the row alone.
    headers = {"X-CSRFToken": ticker.cookies["csrftoken"], "HX-Request": "true",
               "X-Mingus-Live": "open"}
    cpu0, sent, tick_times = server_cpu(server), [], []
    start = time.perf_counter()
    for i in range(ticks):
        due = start + i / rate
        time.sleep(max(0.0, due - time.perf_counter()))  # the bench's own pacing, not a sync
        state, bound = states[i % len(states)]
        verb = "untick" if checked.get(state) else ("override" if bound else "tick")
        t0 = time.perf_counter()
        tick_times.append(timed(ticker, "POST", f"/runbooks/{runbook}/items/{state}/{verb}/",
                                "reason=bench", headers))
        checked[state] = verb != "untick"
        sent.append((t0, state))
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:  # wait (bounded) until every listener saw the last
        if all(any(sent[-1][1] in rows for _, _, rows in l.events) for l in listeners):
            break
        time.sleep(0.05)
    cpu = server_cpu(server) - cpu0
    for listener in listeners:
        listener.close()
    seen, slowest, missed = [], [], 0
    for t0, state in sent:
        per_session = []
        for listener in listeners:
            arrival = next((t for t, _, rows in listener.events if t >= t0 and state in rows),
                           None)
            if arrival is None:
                missed += 1
            else:
                per_session.append(arrival - t0)
        seen += per_session
        if per_session:
            slowest.append(max(per_session))
    received = [size for l in listeners for _, size, _ in l.events]
    return {"rate_per_s": rate, "sessions": len(sessions), "changes": ticks,
            "tick_p95_ms": round(pct(tick_times, 95) * 1000, 1),
            "seen_p50_ms": round(statistics.median(seen) * 1000, 1) if seen else None,
            "seen_p95_ms": round(pct(seen, 95) * 1000, 1) if seen else None,
            "seen_by_all_p95_ms": round(pct(slowest, 95) * 1000, 1) if slowest else None,
            "missed": missed,
            "cpu_s_per_change": round(cpu / ticks, 4),
            "bytes_per_change_per_session": round(sum(received) / max(1, ticks * len(sessions))),
            "events_per_session": round(len(received) / len(sessions), 1),
            # The machine's 1-minute load when the run ended (other work slows every figure).
            "load_1m": round(os.getloadavg()[0], 2)}


def first_load(sessions, page):
    """Every session opens the page once, their starts spread over one second."""
    n = len(sessions)

    def work(i, s):
        time.sleep(i / n)  # the arrival pattern, not a synchronisation
        return [timed(s, "GET", page)]

    values, wall = run_concurrently(sessions, work)
    return {**summary(f"first load, {n} sessions within 1 s", values, wall),
            "load_1m": round(os.getloadavg()[0], 2)}


def live_mode(args, port, server, sessions, runbook, states):
    page = f"/runbooks/{runbook}/"
    ticker = Session(port)
    ticker.login("lead", "bench-lead")
    results = {"first_load": first_load(sessions, page)}
    ticker.request("GET", page)
    runs, checked = [], {}  # each change ticks an unticked item or unticks a ticked one
    runs.append(live_run(port, server, sessions, ticker, runbook, states, 1, args.ticks, checked))
    runs.append(live_run(port, server, sessions, ticker, runbook, states, 5, args.ticks * 2,
                         checked))
    runs.append(live_run(port, server, sessions[:10], ticker, runbook, states, 1, args.ticks,
                         checked))
    runs.append(live_run(port, server, sessions, ticker, runbook, states, 1, args.ticks,
                         checked))
    results["runs"] = runs
    cpu10 = runs[2]["cpu_s_per_change"]
    cpu50 = runs[3]["cpu_s_per_change"]
    results["cpu_ratio_50_to_10"] = round(cpu50 / cpu10, 2) if cpu10 else None
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "workers": args.workers, **results}, indent=2))
        return
    fl = results["first_load"]
    print(f"live pages: gunicorn {args.workers} uvicorn workers, PostgreSQL LISTEN/NOTIFY; "
          f"{os.cpu_count()} CPUs (the bench's clients share them)")
    print(f"first load, {len(sessions)} sessions within 1 s: p50 {fl['p50_ms']} ms, "
          f"p95 {fl['p95_ms']} ms, max {fl['max_ms']} ms (load {fl['load_1m']})")
    print(f"{'rate':>6} {'sessions':>8} {'changes':>7} {'tick p95':>9} {'seen p50':>9} "
          f"{'seen p95':>9} {'all p95':>9} {'missed':>6} {'CPU s/chg':>9} {'B/chg/sess':>10} "
          f"{'load':>5}")
    for r in runs:
        print(f"{r['rate_per_s']:>4}/s {r['sessions']:>8} {r['changes']:>7} "
              f"{r['tick_p95_ms']:>9} {r['seen_p50_ms']:>9} {r['seen_p95_ms']:>9} "
              f"{r['seen_by_all_p95_ms']:>9} {r['missed']:>6} {r['cpu_s_per_change']:>9} "
              f"{r['bytes_per_change_per_session']:>10} {r['load_1m']:>5}")
    print(f"CPU per change, 50 sessions / 10 sessions: {results['cpu_ratio_50_to_10']} x")


if __name__ == "__main__":
    main()
