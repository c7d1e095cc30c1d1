"""Running tasks (loading, validating) in worker processes, with progress flowing back to the
caller's thread.

The caller's thread schedules tasks and receives every message; workers do the work. A worker
exits the moment the caller's process dies (a lifeline pipe, see `_watch_lifeline`), so a
killed run leaves no orphan writing to the target. With one worker, or where processes cannot be
started, tasks run inline in the caller's thread through the same code.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sqlite3
import threading
from collections import deque
from typing import Callable, Optional

import psycopg

from .errors import Cancelled, InputError
from .redact import scrub, url_password

# A message from a task: {"type": "rows"|"log", ...}
MessageHandler = Callable[[dict], None]

# The task kinds a pool may run and their functions, f(ctx, **args) -> picklable result: each
# caller hands its own table (migration/run.py LOAD_TASKS, migration/validate.py
# VALIDATE_TASKS), so this module names no function it runs. Module-level functions pickle by
# reference, so a table travels to the worker processes as it is.
TaskTable = dict[str, Callable]


def run_task(ctx: "WorkContext", functions: TaskTable, kind: str, args: dict):
    """Run one task of the caller's table by its kind."""
    return functions[kind](ctx, **args)


class WorkContext:
    """Connections and messaging for the code running tasks (one per worker process)."""

    def __init__(self, url: str, send: Callable[[dict], None], conn: Optional[psycopg.Connection] = None,
                 busy_timeout: float = 5.0, check: Optional[Callable[[], None]] = None):
        self.url = url
        self.send = send
        self._conn = conn
        self._shared = conn is not None
        self.busy_timeout = busy_timeout
        self._sqlite: dict[str, sqlite3.Connection] = {}
        self._check = check

    def pg(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            from .target import connect

            self._conn = connect(self.url, autocommit=True, purpose=f"worker {os.getpid()}")
            # a commit lost in a crash is redone on resume: chunk and progress row go together
            self._conn.execute("SET synchronous_commit = off")
        return self._conn

    def sqlite(self, path: str) -> sqlite3.Connection:
        con = self._sqlite.get(path)
        if con is None:
            from . import fastpath
            from .sources import open_source

            con = open_source(path, busy_timeout=self.busy_timeout)
            con.text_factory = bytes
            fastpath.register_functions(con)
            self._sqlite[path] = con
        return con

    def check(self) -> None:
        """Stop if the caller cancelled or the parent process died."""
        if self._check is not None:
            self._check()

    def close(self) -> None:
        for con in self._sqlite.values():
            con.close()
        self._sqlite.clear()
        if self._conn is not None and not self._shared:
            self._conn.close()
            self._conn = None


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the parent check between batches still stops the worker
        pass


def _error_payload(exc: BaseException, url: str) -> dict:
    from .target import target_error, is_connection_error

    if isinstance(exc, Cancelled):
        return {"kind": "cancelled", "message": str(exc)}
    if isinstance(exc, InputError):
        return {"kind": "input", "message": scrub(str(exc), url_password(url))}
    if is_connection_error(exc):
        return {"kind": "input", "message": str(target_error(url, exc, "loading"))}
    return {"kind": "internal", "message": scrub(f"{type(exc).__name__}: {exc}", url_password(url))}


def _watch_lifeline(lifeline) -> None:
    """Exit at once when the caller's process dies (its end of the lifeline pipe closes).

    Workers come from a fork server, so PDEATHSIG (which follows the direct parent) cannot
    see the caller die; an open transaction is rolled back by PostgreSQL when we vanish.
    """
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(70)


def _worker_main(url: str, busy_timeout: float, functions: TaskTable, tasks, results, lifeline) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about Ctrl-C
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True).start()
    parent_pid = os.getppid()

    def check():
        if os.getppid() != parent_pid:
            raise SystemExit("parent process is gone")

    ctx = WorkContext(url, send=lambda msg: results.put(("msg", None, msg)), busy_timeout=busy_timeout, check=check)
    try:
        while True:
            item = tasks.get()
            if item is None:
                break
            task_id, kind, args = item
            try:
                results.put(("done", task_id, run_task(ctx, functions, kind, args)))
            except BaseException as exc:  # reported to the parent, which decides
                results.put(("error", task_id, _error_payload(exc, url)))
                ctx.close()
                if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                    break
    finally:
        ctx.close()


def _context():
    """Workers come from a fork server that has the engine preloaded: each starts in
    milliseconds instead of importing psycopg and the engine again, and none inherits the
    caller's threads or connections (as a plain fork would)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["migration.load", "migration.validate"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _children_allowed():
    """Let a daemonic process (a Celery prefork child runs jobs in one) start the workers.

    multiprocessing forbids daemonic processes children so that none is orphaned when its
    daemonic parent is killed. Ours cannot be: each exits the moment the caller's process dies
    (the lifeline pipe, `_watch_lifeline`) and PostgreSQL rolls back its open transaction, so
    the flag is lifted for the start only and put back.
    """
    config = multiprocessing.current_process()._config
    saved = dict(config)
    config["daemon"] = False
    # Celery's billiard gives its children its own AuthenticationString, which multiprocessing
    # refuses to pickle when it hands a new worker to the fork server: same bytes, our type.
    key = config.get("authkey")
    if key is not None and type(key) is not multiprocessing.process.AuthenticationString:
        config["authkey"] = multiprocessing.process.AuthenticationString(bytes(key))
    try:
        yield
    finally:
        config.clear()
        config.update(saved)


@contextlib.contextmanager
def process_executor(workers: int):
    """A concurrent.futures pool of engine processes (fork server), startable in a Celery job."""
    import concurrent.futures

    with _children_allowed():  # for the whole life of the pool: it starts processes lazily
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=_context())
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()  # a cancelled step does not wait for a long scan
            raise
        pool.shutdown(wait=True)


class ProcessPool:
    """N worker processes fed from one task queue."""

    def __init__(self, url: str, workers: int, busy_timeout: float, on_message: MessageHandler,
                 functions: TaskTable):
        with _children_allowed():
            self._start(url, workers, busy_timeout, on_message, functions)

    def _start(self, url: str, workers: int, busy_timeout: float, on_message: MessageHandler,
               functions: TaskTable):
        mp = _context()
        self.url = url
        self.on_message = on_message
        self.tasks = mp.Queue()
        self.results = mp.Queue()
        self.running: set = set()
        self.procs = []
        lifeline_r, self.lifeline = mp.Pipe(duplex=False)  # we keep the writing end, and never write
        for _ in range(workers):
            proc = mp.Process(target=_worker_main, args=(url, busy_timeout, functions, self.tasks, self.results, lifeline_r),
                              daemon=True)
            proc.start()
            self.procs.append(proc)
        lifeline_r.close()

    def submit(self, task_id, kind: str, args: dict) -> None:
        self.running.add(task_id)
        self.tasks.put((task_id, kind, args))

    def poll(self, timeout: float) -> list:
        """Finished tasks as (status, task_id, payload); messages go to `on_message`."""
        out = []
        try:
            item = self.results.get(timeout=timeout)
        except queue.Empty:
            item = None
        while item is not None:
            status, task_id, payload = item
            if status == "msg":
                self.on_message(payload)
            else:
                self.running.discard(task_id)
                out.append((status, task_id, payload))
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                item = None
        if not out and self.running and any(not p.is_alive() for p in self.procs):
            dead = [p.exitcode for p in self.procs if not p.is_alive()]
            for task_id in list(self.running):
                out.append(("error", task_id, {"kind": "internal", "message": f"a worker process died (exit codes {dead})"}))
            self.running.clear()
        return out

    def close(self, kill: bool = False) -> None:
        if kill:
            for p in self.procs:
                if p.is_alive():
                    p.terminate()
        else:
            for _ in self.procs:
                self.tasks.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        self.tasks.close()
        self.results.close()
        self.lifeline.close()


class InlinePool:
    """The same interface, running each task in the caller's thread when polled."""

    def __init__(self, url: str, busy_timeout: float, on_message: MessageHandler,
                 functions: TaskTable, conn=None, check: Optional[Callable[[], None]] = None):
        self.url = url
        self.functions = functions
        self.ctx = WorkContext(url, send=on_message, conn=conn, busy_timeout=busy_timeout, check=check)
        self.queue: deque = deque()
        self.running: set = set()

    def submit(self, task_id, kind: str, args: dict) -> None:
        self.running.add(task_id)
        self.queue.append((task_id, kind, args))

    def poll(self, timeout: float) -> list:
        if not self.queue:
            return []
        task_id, kind, args = self.queue.popleft()
        self.running.discard(task_id)
        try:
            return [("done", task_id, run_task(self.ctx, self.functions, kind, args))]
        except Cancelled:
            raise
        except Exception as exc:
            return [("error", task_id, _error_payload(exc, self.url))]

    def close(self, kill: bool = False) -> None:
        self.ctx.close()


def make_pool(url: str, workers: int, busy_timeout: float, on_message: MessageHandler,
              functions: TaskTable, check=None, conn=None,
              log: Optional[Callable[[str], None]] = None):
    """A process pool of `workers` running the tasks of `functions`, or an inline pool for one
    worker (or a shared connection)."""
    if workers <= 1 or conn is not None:
        return InlinePool(url, busy_timeout, on_message, functions, conn=conn, check=check)
    try:
        return ProcessPool(url, workers, busy_timeout, on_message, functions)
    except (OSError, AssertionError) as exc:  # e.g. inside a daemonic process
        if log:
            log(f"cannot start worker processes ({exc}); loading in this process")
        return InlinePool(url, busy_timeout, on_message, functions, check=check)
