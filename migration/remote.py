"""Chunks loaded by workers elsewhere: other processes or machines (the app sends them as Celery
tasks), with the target's control table as the only channel back.

A chunk is loaded in one PostgreSQL transaction that claims it in `progress` (see
load.load_chunk) while holding the chunk's advisory lock, so a chunk is loaded exactly once
however many times it is sent: a copy that arrives after the chunk committed finds the claim and
skips; a worker killed mid-chunk dies with its transaction, and the chunk is free again.

The coordinator (the run step, wherever it runs) sends each chunk with `dispatch(task_id,
payload)`, and `RemotePool.poll` reads what came back from the control table: committed
`progress` rows are done chunks, `chunk_errors` rows are chunks a worker could not load. A chunk
neither done nor locked by any session some time after it was sent has no worker on it (the
worker died, or the broker lost the message): it is sent again. Keys, indexes, statistics and
foreign keys are short and need the whole table: they run in the coordinator's own pool.

Plain Python: no Django, no Celery. The payload is JSON: it names files and columns, never the
target URL (a worker finds that itself, e.g. from the run it belongs to).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

from .errors import Cancelled, InputError
from .fastpath import ColumnSpec
from .load import TableJob, load_chunk
from .redact import scrub, url_password
from .target import chunk_lock_key, quote_ident
from .workers import WorkContext, _error_payload

REDELIVER_AFTER = 30.0  # seconds a sent chunk may go unclaimed before it is sent again


def encode(args: dict) -> dict:
    """A chunk task's arguments as JSON-able data."""
    return {**args, "job": dataclasses.asdict(args["job"])}


def decode(data: dict) -> dict:
    job = dict(data["job"])
    job["columns"] = [ColumnSpec(**c) for c in job["columns"]]
    return {**data, "job": TableJob(**job)}


def load_remote_chunk(url: str, payload: dict, check: Optional[Callable[[], None]] = None) -> dict:
    """What a worker does with one chunk message: load it, or record in the control table why it
    could not (the coordinator reads that as the chunk's error). Returns the chunk's result."""
    args = decode(payload["args"])
    job = args["job"]
    ctx = WorkContext(url, send=lambda message: None, busy_timeout=payload.get("busy_timeout", 5.0),
                      check=check)
    try:
        return load_chunk(ctx, **args)
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 -- every failure must reach the coordinator
        error = _error_payload(exc, url)
        try:
            conn = ctx.pg()
            if conn.info.transaction_status:  # a failed transaction: end it before writing
                conn.rollback()
            with conn.transaction():
                conn.execute(f"INSERT INTO {quote_ident(job.control)}.chunk_errors "
                             f"(source, table_name, chunk_no, kind, message) VALUES (%s, %s, %s, %s, %s)",
                             (job.source, job.table, args["chunk_no"], error["kind"],
                              scrub(error["message"], url_password(url))))
        except Exception:  # noqa: BLE001 -- the target is gone: the coordinator resends later
            pass
        return {"error": error}
    finally:
        ctx.close()


class RemotePool:
    """The pool interface of migration.workers for chunks sent to remote workers; every other
    task kind goes to `local`."""

    def __init__(self, conn, control: str, dispatch: Callable[[str, dict], None], local,
                 on_message: Callable[[dict], None], busy_timeout: float = 5.0,
                 redeliver_after: float = REDELIVER_AFTER, log: Optional[Callable[[str], None]] = None):
        self.conn = conn  # the coordinator's autocommit connection (same thread)
        self.ctl = quote_ident(control)
        self.dispatch = dispatch
        self.local = local
        self.on_message = on_message
        self.busy_timeout = busy_timeout
        self.redeliver_after = redeliver_after
        self.log = log or (lambda line: None)
        self.sent: dict = {}  # task_id -> (source, table, chunk_no, key, payload, sent_at)
        self.resent = 0

    @property
    def running(self) -> set:
        return set(self.sent) | set(self.local.running)

    def submit(self, task_id, kind: str, args: dict) -> None:
        if kind != "chunk":
            self.local.submit(task_id, kind, args)
            return
        job = args["job"]
        payload = {"task_id": task_id, "args": encode(args), "busy_timeout": self.busy_timeout}
        self.sent[task_id] = (job.source, job.table, args["chunk_no"], job.key, payload, time.monotonic())
        self.dispatch(task_id, payload)

    def poll(self, timeout: float) -> list:
        out = self.local.poll(0 if self.sent else timeout) if self.local.running else []
        if not self.sent:
            return out
        out += self._finished()
        if not out:
            self._resend_orphans()
            time.sleep(min(timeout, 0.05))  # the control table is polled, not pushed
        return out

    def _finished(self) -> list:
        keys = [(s, t, n) for s, t, n, *_ in self.sent.values()]
        by_key = {(s, t, n): task_id for task_id, (s, t, n, *_) in self.sent.items()}
        out = []
        rows = self.conn.execute(
            f"SELECT p.source, p.table_name, p.chunk_no, p.rows_read, p.rows_loaded, p.rows_rejected, "
            f"p.seconds, p.strict, p.loaded_by FROM {self.ctl}.progress p "
            f"JOIN unnest(%s::text[], %s::text[], %s::int[]) AS k(source, table_name, chunk_no) "
            f"USING (source, table_name, chunk_no) WHERE p.seconds IS NOT NULL",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])).fetchall()
        for source, table, chunk_no, read, loaded, rejected, seconds, strict, loaded_by in rows:
            task_id = by_key[(source, table, chunk_no)]
            key = self.sent.pop(task_id)[3]
            self.on_message({"type": "rows", "table": key, "read": read or 0, "rejected": rejected or 0})
            out.append(("done", task_id, {"key": key, "chunk_no": chunk_no, "read": read, "loaded": loaded,
                                          "rejected": rejected, "seconds": seconds, "strict": strict,
                                          "skipped": False, "notes": [], "pid": loaded_by}))
        errors = self.conn.execute(
            f"DELETE FROM {self.ctl}.chunk_errors e USING unnest(%s::text[], %s::text[], %s::int[]) "
            f"AS k(source, table_name, chunk_no) WHERE (e.source, e.table_name, e.chunk_no) = "
            f"(k.source, k.table_name, k.chunk_no) RETURNING e.source, e.table_name, e.chunk_no, e.kind, e.message",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])).fetchall()
        for source, table, chunk_no, kind, message in errors:
            task_id = by_key.get((source, table, chunk_no))
            if task_id in self.sent:
                self.sent.pop(task_id)
                out.append(("error", task_id, {"kind": kind, "message": message}))
        return out

    def _resend_orphans(self) -> None:
        now = time.monotonic()
        for task_id, (source, table, chunk_no, key, payload, sent_at) in list(self.sent.items()):
            if now - sent_at < self.redeliver_after:
                continue
            lock = chunk_lock_key(source, table, chunk_no)
            if not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone()[0]:
                continue  # a worker is loading it
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
            self.sent[task_id] = (source, table, chunk_no, key, payload, now)
            self.resent += 1
            self.log(f"{key} chunk {chunk_no}: no worker took it within {self.redeliver_after:g} s "
                     f"(a worker died or the message was lost); sent again")
            self.dispatch(task_id, payload)

    def close(self, kill: bool = False) -> None:
        self.sent.clear()  # a chunk still out there claims or skips on its own
        self.local.close(kill=kill)


class Remote:
    """How a run sends its chunks elsewhere: `dispatch(task_id, payload)` and how many chunks may
    be out at once (`slots`: the remote workers' total concurrency)."""

    def __init__(self, dispatch: Callable[[str, dict], None], slots: int,
                 redeliver_after: float = REDELIVER_AFTER):
        if slots < 1:
            raise InputError("chunks sent to remote workers need at least one slot")
        self.dispatch, self.slots, self.redeliver_after = dispatch, slots, redeliver_after
