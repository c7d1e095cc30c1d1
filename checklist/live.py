"""Push a runbook's changes to the pages showing it: one watcher per process, fanning out.

A web process (an ASGI worker) holds one `Hub`. Each open page is a `Subscriber` of its runbook;
the hub runs one watcher task for all of them:

- on PostgreSQL it LISTENs on `changes.CHANNEL` over one psycopg 3 async connection: every write
  sends NOTIFY "runbook_id:revision" when it commits, and NOTIFY reaches every listening process,
  so every web instance hears of every change;
- on SQLite (the embedded default) it reads the revisions of the runbooks it has subscribers for,
  one query per interval per process, however many pages are open.

A subscriber keeps only the newest revision it was told of (a wake-up flag, not a queue): a page
that falls behind catches up in one step. What is sent (the delta) is rendered once per runbook,
revision step and kind of page, and shared by every subscriber asking for the same one
(`Hub.shared`), so the cost of a change grows with the kinds of pages open, not their number.
"""
import asyncio
import logging
import threading
import weakref
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection

from . import changes

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    runbook_id: int
    revision: int  # the revision the page shows
    latest: int = 0  # the newest revision the hub has heard of
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def tell(self, revision):
        if revision > self.latest:
            self.latest = revision
            self.woken.set()

    async def wait(self, timeout):
        """True when a newer revision than the page's is known, False after `timeout`."""
        if self.latest <= self.revision:
            self.woken.clear()
            try:
                await asyncio.wait_for(self.woken.wait(), timeout)
            except TimeoutError:
                return False
        return self.latest > self.revision


class Hub:
    """The process's subscribers by runbook, the one watcher task, and the shared renders."""

    def __init__(self, poll_interval=None, watch=True):
        self.subscribers = {}  # runbook_id -> set of Subscriber
        self.poll_interval = poll_interval
        self.watch = watch
        # Set while the watcher is connected and listening (or polling).
        self.listening = asyncio.Event()
        self._watcher = None
        self._loop = None
        self._shared = {}  # key -> asyncio.Future of a render in progress
        self.notifications = 0  # heard (tests and the bench read it)

    # --- subscribers --------------------------------------------------------------------------
    def subscribe(self, runbook_id, revision, latest=0):
        sub = Subscriber(runbook_id, revision)
        sub.tell(max(latest, revision))
        self.subscribers.setdefault(runbook_id, set()).add(sub)
        self._ensure_watcher()
        return sub

    def unsubscribe(self, sub):
        subs = self.subscribers.get(sub.runbook_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.runbook_id]

    def publish(self, runbook_id, revision):
        """Tell every subscriber of the runbook that it is at `revision` now."""
        self.notifications += 1
        for sub in self.subscribers.get(runbook_id, ()):
            sub.tell(revision)

    def publish_all(self, revisions):
        for runbook_id, revision in revisions.items():
            self.publish(runbook_id, revision)

    # --- shared renders -----------------------------------------------------------------------
    async def shared(self, key, render):
        """`await render()` once for all callers asking for `key` at the same time. The render
        is a task of its own: a caller that goes away (a closed page) does not cancel it for
        the others."""
        task = self._shared.get(key)
        if task is None:
            task = self._shared[key] = asyncio.get_running_loop().create_task(render())
            # Asked again once done, it renders anew (the runbook may have moved on).
            task.add_done_callback(lambda _: self._shared.pop(key, None))
        return await asyncio.shield(task)

    # --- the watcher --------------------------------------------------------------------------
    def _ensure_watcher(self):
        if not self.watch:
            return
        loop = asyncio.get_running_loop()
        if self._watcher is not None and not self._watcher.done() and self._loop is loop:
            return
        self._loop = loop
        if connection.vendor == "postgresql" and not self.poll_interval:
            self._watcher = loop.create_task(self._listen(), name="mingus-live-listen")
        else:
            self._watcher = loop.create_task(self._poll(), name="mingus-live-poll")

    async def stop(self):
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except (asyncio.CancelledError, Exception):
                pass
            self._watcher = None

    async def _listen(self):
        import psycopg

        conninfo = _conninfo()
        delay = 0.5
        while self.subscribers:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo,
                                                                 autocommit=True) as conn:
                    await conn.execute(f"LISTEN {changes.CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    # Anything committed while we were not listening: read it once.
                    self.publish_all(await _revisions_async(conn, list(self.subscribers)))
                    while self.subscribers:
                        async for note in conn.notifies(timeout=5.0):
                            runbook_id, _, revision = note.payload.partition(":")
                            if runbook_id.isdigit() and revision.isdigit():
                                self.publish(int(runbook_id), int(revision))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: listen again when it is back
                self.listening.clear()
                log.warning("live: LISTEN connection lost (%s); retrying in %.1f s",
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _poll(self):
        from asgiref.sync import sync_to_async

        interval = self.poll_interval or settings.LIVE_POLL_SECONDS
        while self.subscribers:
            try:
                self.publish_all(await sync_to_async(_revisions, thread_sensitive=False)(
                    list(self.subscribers)))
                self.listening.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live: reading revisions failed (%s)", type(exc).__name__)
            await asyncio.sleep(interval)


def _conninfo():
    from django.db import connections

    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    params.pop("pool", None)
    params.pop("server_side_binding", None)
    import psycopg

    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items()
                                             if isinstance(v, (str, int))})


async def _revisions_async(conn, runbook_ids):
    from .models import Runbook

    if not runbook_ids:
        return {}
    cur = await conn.execute(f"SELECT id, revision FROM {Runbook._meta.db_table} "
                             "WHERE id = ANY(%s)", [runbook_ids])
    return dict(await cur.fetchall())


def _revisions(runbook_ids):
    """runbook id -> revision for these runbooks: the one query a polling watcher makes."""
    from .models import Runbook

    try:
        return dict(Runbook.objects.filter(pk__in=runbook_ids).values_list("pk", "revision"))
    finally:
        close_old_connections()
        connection.close()


_hubs = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub():
    """This process's hub (one per event loop: a test server may run several loops)."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        found = _hubs.get(loop)
        if found is None:
            found = _hubs[loop] = Hub()
        return found
