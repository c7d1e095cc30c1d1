"""Benchmark of the run step with its chunks on Celery workers (migration.remote), against the
same run loading with its own processes, in one sitting on one generated file.

    .venv/bin/python bench/chunks_bench.py [--scale 0.25] [--chunk-rows 20000]

Prints, for: the run's own processes (the reference: `pgmigrate run` as a shell runs it), chunks
on 1 Celery worker, and chunks on 2 Celery workers (each `-c 1`, on Redis), the wall time, rows/s
and the ratio to the reference, with the load average, so figures taken on a busy machine say so.
The workers here run on this machine; on several machines each adds its cores (docs/scaling.md).
Needs PostgreSQL on 127.0.0.1:5432 (trust auth for root) and Redis on 127.0.0.1:6379 (db 14).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from celery import Celery  # noqa: E402

from migration import steps  # noqa: E402
from migration.remote import Remote, load_remote_chunk  # noqa: E402

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")
app = Celery("chunks_bench", broker=BROKER)
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True,
                broker_connection_retry_on_startup=True)


@app.task(name="bench.load_chunk")
def load_chunk(payload):
    # Bench only: the target comes from the worker's environment (the app's task reads it from
    # the run instead, so the message never carries it).
    load_remote_chunk(os.environ["BENCH_TARGET_URL"], payload)


def start_workers(n: int, queue: str, url: str) -> list:
    env = {**os.environ, "BENCH_TARGET_URL": url, "PYTHONPATH": f"{REPO}:{REPO / 'bench'}"}
    procs, ready = [], []
    for i in range(n):
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chunks_bench", "worker", "-Q", queue, "-c", "1",
             "-n", f"{queue}-{i}@localhost", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "WARNING"],
            cwd=REPO / "bench", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        event = threading.Event()

        def read(p=proc, e=event):
            for line in p.stdout:
                if " ready." in line:
                    e.set()
            e.set()

        threading.Thread(target=read, daemon=True).start()
        procs.append(proc)
        ready.append(event)
    for event in ready:
        event.wait(60)
    return procs


def stop_workers(procs: list) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def timed_run(db: Path, workdir: Path, remote_workers: int, chunk_rows: int) -> dict:
    from migrate_bench import drop_db, fresh_db

    name, url = fresh_db(f"chunks{remote_workers}")
    procs, remote = [], None
    try:
        if remote_workers:
            queue = f"bench-chunks-{uuid.uuid4().hex[:6]}"
            procs = start_workers(remote_workers, queue, url)
            remote = Remote(lambda task_id, payload: load_chunk.apply_async((payload,), queue=queue),
                            slots=remote_workers)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        report = steps.run({"bench": db}, url, workdir=workdir, chunk_rows=chunk_rows, remote=remote)
        seconds = time.perf_counter() - t0
        if not report.ok:
            raise SystemExit(f"run failed: {report.problems}")
        totals = report.to_dict()["totals"]
        return {"seconds": seconds, "rows": totals["read"],
                "loaders": totals.get("loader_processes"), "load": load}
    finally:
        stop_workers(procs)
        drop_db(name)


def main() -> None:
    from migrate_bench import build_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.25, help="of migrate_bench's 2.2 M-row file")
    parser.add_argument("--chunk-rows", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chunks-bench-") as tmp:
        tmp = Path(tmp)
        db = tmp / "bench.db"
        build_file(db, args.scale)
        print(f"file: {db.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} cores, chunk rows {args.chunk_rows}")
        # The plan once, so every configuration times the run alone.
        steps.schema({"bench": db}, None, workdir=tmp / "work")
        results = {}
        for label, workers in (("own processes (reference)", 0), ("1 Celery worker", 1),
                               ("2 Celery workers", 2)):
            results[label] = r = timed_run(db, tmp / "work", workers, args.chunk_rows)
            ref = results["own processes (reference)"]["seconds"]
            print(f"{label:28} {r['seconds']:7.2f} s  {r['rows'] / r['seconds']:>10,.0f} rows/s  "
                  f"{r['seconds'] / ref:5.2f}x the reference  loaders {r['loaders']}  "
                  f"(load average {r['load']:.1f})")


if __name__ == "__main__":
    main()
