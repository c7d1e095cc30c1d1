"""Benchmark of the migration engine's run (and validate) against a raw sqlite3 | psql pipe and
pgloader, on one generated SQLite file of 2.2 million rows.

    .venv/bin/python bench/migrate_bench.py [--scale 1.0] [--workers N] [--keep]

Prints rows/s, wall-time ratios, and the peak resident memory of every process involved
(this process and its worker processes, sqlite3/psql/pgloader, and the PostgreSQL backends,
whose peak includes the pages of the shared buffer pool they touched; "private" leaves that
shared memory out). Three raw references are timed: the bare pipe into the same CREATE
TABLEs, the same followed by the same keys, indexes and foreign keys (the engine's end state),
and the pipe into the fully applied unified_schema.sql.
Needs PostgreSQL on 127.0.0.1:5432 (trust auth for root); creates eng_bench_* databases and
drops them at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from migration import steps  # noqa: E402
from migration.ddl import parse_schema_file  # noqa: E402

ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
KINDS = ("login", "logout", "purchase", "view", "click")


def build_file(path: Path, scale: float = 1.0) -> dict:
    """accounts (200k), events (1.5M, FK to accounts), attachments (200k blobs), metrics (300k)."""
    n_acc, n_ev, n_att, n_met = (int(x * scale) for x in (200_000, 1_500_000, 200_000, 300_000))
    con = sqlite3.connect(path)
    con.executescript("""
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT,
                               created_at DATETIME NOT NULL, balance REAL, active BOOLEAN DEFAULT 1);
        CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id),
                             kind TEXT NOT NULL, payload TEXT, ts DATETIME NOT NULL, amount REAL, qty INTEGER);
        CREATE INDEX events_account ON events(account_id);
        CREATE TABLE attachments (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER REFERENCES accounts(id),
                                  name TEXT, data BLOB, created_at DATETIME);
        CREATE TABLE metrics (id INTEGER PRIMARY KEY, ts DATETIME, v1 REAL, v2 REAL, n INTEGER, label TEXT);
    """)
    rnd = random.Random(42)

    def ts(i):
        return "2024-%02d-%02d %02d:%02d:%02d.%06d" % (1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60,
                                                         (i * 7919) % 1_000_000 or 1)

    def payload(i):
        if i % 50 == 0:
            return None
        if i % 47 == 0:
            return "multi-line\tpayload %d\nwith a \\ backslash" % i
        return "payload text %d with some ordinary words in it" % i

    con.executemany("INSERT INTO accounts VALUES (?,?,?,?,?,?)",
                    ((i, f"user{i}@example.com", f"User {i} Ñoño", ts(i), round(rnd.random() * 1e4, 2), i % 3 != 0)
                     for i in range(1, n_acc + 1)))
    con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?)",
                    ((i, 1 + i % n_acc, KINDS[i % 5], payload(i), ts(i), rnd.random() * 100, i % 1000)
                     for i in range(1, n_ev + 1)))
    con.executemany("INSERT INTO attachments (account_id, name, data, created_at) VALUES (?,?,?,?)",
                    ((1 + i % n_acc, f"file{i}.bin", rnd.randbytes(100 + i % 300), ts(i)) for i in range(n_att)))
    con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                    ((i, ts(i), rnd.gauss(0, 1), rnd.random(), i, "m%d" % (i % 100)) for i in range(1, n_met + 1)))
    con.commit()
    con.close()
    return {"accounts": n_acc, "events": n_ev, "attachments": n_att, "metrics": n_met}


class MemorySampler(threading.Thread):
    """Peak resident memory of this process tree and of the PostgreSQL backends of one database.

    Reads VmHWM (the kernel's own peak) and the private part (RssAnon + RssFile) of each
    process every 50 ms; backends' VmHWM includes the shared buffers they touched.
    """

    def __init__(self, dbname: str):
        super().__init__(daemon=True)
        self.dbname = dbname
        self.stop_event = threading.Event()
        self.peak: dict = {}  # label -> (VmHWM MB, private MB)
        self.cpu: dict = {}  # pid -> (label, user+system seconds at the last sample)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _label(self, pid: int):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
                ppid = int(fields[1])
                self._last_cpu = (int(fields[11]) + int(fields[12])) / self.tick
        except (OSError, ValueError, IndexError):
            return None, None
        if cmd.startswith("postgres:") and f" {self.dbname} " in cmd:
            return "postgres backend", ppid
        return cmd.split(" ")[0].rsplit("/", 1)[-1] or "?", ppid

    def _ours(self, pid: int, parents: dict) -> bool:
        me = os.getpid()
        seen = 0
        while pid and seen < 20:
            if pid == me:
                return True
            pid = parents.get(pid)
            seen += 1
        return False

    def sample(self) -> None:
        parents, labels, cpu = {}, {}, {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                label, ppid = self._label(pid)
                if label:
                    parents[pid], labels[pid], cpu[pid] = ppid, label, self._last_cpu
        for pid, label in labels.items():
            if label != "postgres backend" and not self._ours(pid, parents):
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            kb = lambda k: int(fields.get(k, "0 kB").split()[0])  # noqa: E731
            hwm, private = kb("VmHWM") / 1024, (kb("RssAnon") + kb("RssFile")) / 1024
            name = "python (engine)" if label.startswith("python") and pid == os.getpid() else \
                "python worker" if label.startswith("python") else label
            if pid not in self.cpu:
                self.cpu[pid] = (name, cpu[pid], cpu[pid])
            self.cpu[pid] = (name, self.cpu[pid][1], cpu[pid])
            old = self.peak.get(name, (0, 0))
            self.peak[name] = (max(old[0], hwm), max(old[1], private))

    def run(self) -> None:
        while not self.stop_event.wait(0.05):
            self.sample()

    def stop(self) -> dict:
        self.sample()
        self.stop_event.set()
        self.join()
        return self.peak

    def cpu_seconds(self) -> dict:
        """CPU used during the sampling, by process label (processes seen at least once)."""
        out: dict = {}
        for name, first, last in self.cpu.values():
            out[name] = out.get(name, 0.0) + last - first
        return {k: round(v, 2) for k, v in out.items() if v > 0.005}


def fresh_db(tag: str) -> tuple[str, str]:
    name = f"eng_bench_{tag}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return name, f"postgresql://root@127.0.0.1:5432/{name}"


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def raw_reference(db: Path, url: str, schema_sql: str, keys_first: bool = False) -> dict:
    """sqlite3 -csv | psql \\copy, one table after the other, into the same CREATE TABLEs.

    With ``keys_first`` the whole unified_schema.sql is applied before the data (what
    ``psql -f unified_schema.sql`` then the pipe gives); otherwise keys, indexes and foreign
    keys are built after the data and timed separately.
    """
    statements = parse_schema_file(schema_sql)
    before = ("prelude", "table", "key", "index", "fk") if keys_first else ("prelude", "table")
    with psycopg.connect(url, autocommit=True) as conn:
        for st in statements:
            if st.section in before:
                conn.execute(st.sql)
    con = sqlite3.connect(db)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    selects = {}
    for t in tables:
        cols = con.execute(f"SELECT name, type FROM pragma_table_info('{t}')").fetchall()
        exprs = [f"'\\x' || hex({c})" if typ.upper() == "BLOB" else c for c, typ in cols]
        selects[t] = f"SELECT {', '.join(exprs)} FROM {t}"
    con.close()
    t0 = time.perf_counter()
    for t in tables:
        pipe = (f"sqlite3 -csv {db} \"{selects[t]}\" | "
                f"psql -q -X -d {url} -c \"\\copy bench.{t} FROM STDIN WITH (FORMAT csv)\"")
        subprocess.run(["sh", "-c", pipe], check=True)
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for st in statements:
            if st.section in ("key", "index", "fk") and not keys_first:
                conn.execute(st.sql)
    return {"load_s": load, "post_s": time.perf_counter() - t1}


def run_pgloader(db: Path, url: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(["pgloader", "--quiet", f"sqlite://{db}", url], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    rows = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for (t,) in conn.execute("SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables"):
            rows += conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    return {"seconds": seconds, "rows": rows, "returncode": out.returncode, "stderr": out.stderr[-500:]}


def mb(peaks: dict) -> str:
    return ", ".join(f"{k} {v[0]:.0f} MB (private {v[1]:.0f} MB)" for k, v in sorted(peaks.items()) if v[0] >= 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 2.2 million rows")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None, help="where to build the file (default: a temp dir)")
    ap.add_argument("--skip-pgloader", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the databases and files")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of engine and raw runs (medians are printed)")
    ap.add_argument("--skip-job", action="store_true", help="do not time the migrate job through a Celery worker")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="pgmigrate-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    db = base / "bench.db"
    if db.exists():
        db.unlink()
    t0 = time.perf_counter()
    counts = build_file(db, args.scale)
    rows = sum(counts.values())
    print(f"file: {db} {db.stat().st_size / 1e6:.0f} MB, {rows:,} rows {counts} (built in {time.perf_counter() - t0:.1f}s)")
    print(f"machine: {os.cpu_count()} cores; PostgreSQL {psycopg.connect(ADMIN).info.server_version}")
    created = []

    def engine_once(work: Path) -> dict:
        name, url = fresh_db("engine")
        created.append(name)
        shutil.rmtree(work, ignore_errors=True)
        schema_sampler = MemorySampler(name)
        schema_sampler.start()
        t0 = time.perf_counter()
        schema = steps.schema({"bench": db}, url, work)
        schema_s = time.perf_counter() - t0
        schema_sampler.stop()
        load = {"schema": os.getloadavg()[0]}
        sampler = MemorySampler(name)
        sampler.start()
        t0 = time.perf_counter()
        rep = steps.run({"bench": db}, url, work, workers=args.workers)
        run_s = time.perf_counter() - t0
        load["run"] = os.getloadavg()[0]
        mem = sampler.stop()
        assert rep.ok and rep.totals["loaded"] == rows, rep.problems
        vsampler = MemorySampler(name)
        vsampler.start()
        t0 = time.perf_counter()
        val = steps.validate({"bench": db}, url, work, workers=args.workers)
        val_s = time.perf_counter() - t0
        load["validate"] = os.getloadavg()[0]
        vmem = vsampler.stop()
        assert val.ok, val.problems[:5]
        drop_db(name)
        created.remove(name)
        # from scratch: no schema yet, the run makes it (profile, census, plan) and loads
        name, url = fresh_db("scratch")
        created.append(name)
        scratch = work.with_name(work.name + "-scratch")
        shutil.rmtree(scratch, ignore_errors=True)
        ssampler = MemorySampler(name)
        ssampler.start()
        t0 = time.perf_counter()
        srep = steps.run({"bench": db}, url, scratch, workers=args.workers)
        scratch_s = time.perf_counter() - t0
        load["scratch"] = os.getloadavg()[0]
        smem = ssampler.stop()
        assert srep.totals["loaded"] == rows, srep.problems
        drop_db(name)
        created.remove(name)
        return {"load": load, "schema_s": schema_s, "run_s": run_s, "val_s": val_s, "scratch_s": scratch_s, "mem": mem,
                "vmem": vmem, "smem": smem, "cpu": sampler.cpu_seconds(), "workers": rep.workers,
                "schema_cpu": schema_sampler.cpu_seconds(), "vcpu": vsampler.cpu_seconds(), "scpu": ssampler.cpu_seconds(),
                "loader_processes": rep.totals.get("loader_processes"), "sql": Path(schema.schema_sql).read_text()}

    def raw_once(schema_sql: str, keys_first: bool) -> dict:
        name, url = fresh_db("raw")
        created.append(name)
        sampler = MemorySampler(name)
        sampler.start()
        out = raw_reference(db, url, schema_sql, keys_first)
        out["load"] = os.getloadavg()[0]
        out["mem"] = sampler.stop()
        out["cpu"] = sampler.cpu_seconds()
        drop_db(name)
        created.remove(name)
        return out

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    try:
        engines, raws, fulls = [], [], []
        for k in range(args.repeat):  # alternate, so both see the same machine
            engines.append(engine_once(base / "work"))
            raws.append(raw_once(engines[0]["sql"], keys_first=False))
            fulls.append(raw_once(engines[0]["sql"], keys_first=True))
            print(f"  round {k + 1}: engine run {engines[-1]['run_s']:.2f}s, validate {engines[-1]['val_s']:.2f}s; "
                  f"raw {raws[-1]['load_s']:.2f}s (+ keys {raws[-1]['load_s'] + raws[-1]['post_s']:.2f}s); "
                  f"raw into the full schema {fulls[-1]['load_s']:.2f}s")
        run_s = median([e["run_s"] for e in engines])
        val_s = median([e["val_s"] for e in engines])
        raw_s = median([r["load_s"] for r in raws])
        raw_keys_s = median([r["load_s"] + r["post_s"] for r in raws])
        full_s = median([f["load_s"] for f in fulls])
        e = engines[0]
        print(f"medians of {args.repeat} round(s); load average now {os.getloadavg()[0]:.2f}")
        print(f"engine schema step (not in the run time): {e['schema_s']:.1f}s")
        print(f"  cpu seconds (sampled): {e['schema_cpu']}")
        print(f"engine run: {run_s:.2f}s  {rows / run_s:,.0f} rows/s  workers={e['workers']}  (COPY with type "
              f"handling and rejects, resumability bookkeeping, progress; then keys, indexes, foreign keys, "
              f"identities, ANALYZE, catalog verification)")
        print(f"  peak memory: {mb(e['mem'])}")
        print(f"  cpu seconds (sampled): {e['cpu']}")
        print(f"engine validate (every row, both sides): {val_s:.2f}s  {rows / val_s:,.0f} rows/s  "
              f"= {val_s / run_s:.2f} x the run")
        print(f"  peak memory: {mb(e['vmem'])}")
        print(f"  cpu seconds (sampled): {e['vcpu']}")
        print(f"engine run from scratch (schema made by the run): {e['scratch_s']:.2f}s")
        print(f"  cpu seconds (sampled): {e['scpu']}")
        print(f"raw sqlite3 -csv | psql \\copy per table, into the same CREATE TABLEs: {raw_s:.2f}s  "
              f"{rows / raw_s:,.0f} rows/s")
        print(f"raw, then the same keys/indexes/foreign keys (the engine's end state): {raw_keys_s:.2f}s")
        print(f"raw into the fully applied unified_schema.sql (keys present while loading): {full_s:.2f}s")
        print(f"  peak memory: {mb(raws[0]['mem'])}")
        print(f"  cpu seconds (sampled): {raws[0]['cpu']}")
        print(f"ratio engine/raw (wall time): {run_s / raw_keys_s:.2f} vs raw + keys/indexes/FKs (same end state), "
              f"{run_s / full_s:.2f} vs raw into the full schema, {run_s / raw_s:.2f} vs the bare raw load")
        pgl_s = None
        if args.skip_pgloader:
            print("pgloader: skipped (--skip-pgloader)")
        elif not shutil.which("pgloader"):
            print("pgloader: not installed (apt-get install -y pgloader as root); no comparison")
        else:
            name, url = fresh_db("pgloader")
            created.append(name)
            sampler = MemorySampler(name)
            sampler.start()
            pgl = run_pgloader(db, url)
            pgl_mem = sampler.stop()
            print(f"pgloader {subprocess.run(['pgloader', '--version'], capture_output=True, text=True).stdout.split()[2]}:"
                  f" {pgl['seconds']:.2f}s  {pgl['rows'] / pgl['seconds']:,.0f} rows/s ({pgl['rows']:,} rows, exit "
                  f"{pgl['returncode']}); engine throughput = {(rows / run_s) / (pgl['rows'] / pgl['seconds']):.1f} x pgloader's")
            print(f"  peak memory: {mb(pgl_mem)}")
            pgl_s = pgl["seconds"] if pgl["rows"] == rows else None
        # The five figures, against the raw pipe with the same end state (keys, indexes,
        # foreign keys built after the data), each with its target.
        schema_s = median([x["schema_s"] for x in engines])
        scratch_s = median([x["scratch_s"] for x in engines])
        private = max(v[1] for m in (e["mem"], e["vmem"], e["smem"]) for k, v in m.items() if k != "postgres backend")
        job = None
        if args.skip_job:
            print("migrate job through Celery: skipped (--skip-job)")
        else:
            # The Run button's path: the jobs API, a real Celery worker, the engine inside it.
            out = subprocess.run([sys.executable, str(REPO / "bench" / "migrate_job_bench.py"), "--db", str(db), "--json"],
                                 capture_output=True, text=True, cwd=REPO)
            if out.returncode:
                print(f"migrate job through Celery: failed (exit {out.returncode}): {out.stderr[-1500:]}")
            else:
                job = json.loads(out.stdout.strip().splitlines()[-1])
                job["load"] = os.getloadavg()[0]
        ld = e["load"]

        def cpu(sampled: dict) -> str:
            return f"{sum(sampled.values()):.1f} CPU-s"

        raw_cpu = cpu(raws[0]["cpu"])
        print("figures (targets in brackets; 1-minute load average of this 2-core machine when each was measured):")
        print(f"  1. schema step {schema_s:.1f}s = {schema_s / raw_keys_s:.2f} x the raw pipe (<= 0.5)  "
              f"[load {ld['schema']:.1f}; raw pipe {raw_keys_s:.1f}s at load {raws[0]['load']:.1f}; "
              f"{cpu(e['schema_cpu'])} vs the raw pipe's {raw_cpu}]")
        print(f"  2. run from scratch {scratch_s:.1f}s = {scratch_s / raw_keys_s:.2f} x the raw pipe (<= 1.5)  "
              f"[load {ld['scratch']:.1f}; {cpu(e['scpu'])}]")
        print(f"  3. run with the plan made (pgmigrate run) {run_s:.1f}s = {run_s / raw_keys_s:.2f} x the raw pipe (<= 0.9)"
              + (f", {pgl_s / run_s:.1f} x faster than pgloader (>= 3)" if pgl_s else ", pgloader not compared")
              + f"  [load {ld['run']:.1f}; {cpu(e['cpu'])}]")
        print(f"  4. largest engine process (private resident memory) {private:.0f} MB (<= 128); "
              f"loader processes used: {e['loader_processes']}")
        print(f"  5. validate {val_s:.1f}s = {val_s / run_s:.2f} x the load (<= 1)  [load {ld['validate']:.1f}; "
              f"{cpu(e['vcpu'])}]")
        print("  (CPU-s: user+system seconds of this process, its workers and the database's backends, sampled "
              "every 50 ms; they move less with other load than wall time does)")
        if job:
            print(f"  job path: the migrate job (API POST, Celery worker, engine, evidence) {job['seconds']:.1f}s = "
                  f"{job['seconds'] / run_s:.2f} x pgmigrate run; {job['loader_processes']} loader processes, "
                  f"{job['loaded']:,} rows  [load {job['load']:.1f}]")
    finally:
        if not args.keep:
            for name in created:
                drop_db(name)
            if args.dir is None:
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
