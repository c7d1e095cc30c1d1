"""Progress and log lines, delivered to whoever drives a step.

A caller passes ``progress=callable``; the callable receives `ProgressEvent` objects, always
from the thread that called the step (never from a worker process), so it may write to a
database or a terminal without locking. Kinds of event:

- ``start``: the step began; ``rows_total``/``tables_total`` are set when known.
- ``progress``: rows moved; at most a few per second. ``rate_rows_s`` and ``eta_s`` are
  computed over the whole step so far.
- ``table``: one table finished (``table`` names it as ``source.table``).
- ``log``: a log line (``level`` is info, warning or error; ``message`` holds the line).
- ``finish``: the step ended (``message`` says how).

If the callable raises, the error is logged once and the step carries on: a broken progress
display must not stop a migration. ``should_cancel`` (a callable returning bool) is polled
between batches; when it returns True the step stops with `Cancelled` and keeps its state.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import Cancelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """One progress or log notification (see the module docstring for the kinds)."""

    step: str
    kind: str
    message: str = ""
    level: str = "info"
    table: Optional[str] = None
    rows_done: int = 0
    rows_total: Optional[int] = None
    tables_done: int = 0
    tables_total: Optional[int] = None
    bytes_done: int = 0
    elapsed_s: float = 0.0
    rate_rows_s: Optional[float] = None
    eta_s: Optional[float] = None

    @property
    def fraction(self) -> Optional[float]:
        """Share of rows done, 0..1, when the total is known."""
        if not self.rows_total:
            return None
        return min(1.0, self.rows_done / self.rows_total)

    def to_dict(self) -> dict:
        """The event as plain data (for storing in a task row)."""
        return asdict(self)


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


class Reporter:
    """Keeps the counters of one step and turns them into events for the caller."""

    def __init__(self, step: str, progress: Optional[ProgressCallback] = None,
                 should_cancel: Optional[CancelCheck] = None, log_path: Optional[Path] = None,
                 interval: float = 0.25):
        self.step = step
        self.callback = progress
        self.should_cancel = should_cancel
        self.interval = interval
        self.t0 = time.monotonic()
        self.rows_done = 0
        self.rows_total: Optional[int] = None
        self.tables_done = 0
        self.tables_total: Optional[int] = None
        self.bytes_done = 0
        self._last_emit = 0.0
        self._callback_failed = False
        self._log_file = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(log_path, "a", encoding="utf-8")

    def _event(self, kind: str, message: str = "", level: str = "info", table: Optional[str] = None) -> ProgressEvent:
        elapsed = time.monotonic() - self.t0
        rate = self.rows_done / elapsed if elapsed > 0 and self.rows_done else None
        eta = None
        if rate and self.rows_total:
            eta = max(0.0, (self.rows_total - self.rows_done) / rate)
        return ProgressEvent(step=self.step, kind=kind, message=message, level=level, table=table,
                             rows_done=self.rows_done, rows_total=self.rows_total,
                             tables_done=self.tables_done, tables_total=self.tables_total,
                             bytes_done=self.bytes_done, elapsed_s=round(elapsed, 3),
                             rate_rows_s=round(rate, 1) if rate else None,
                             eta_s=round(eta, 1) if eta is not None else None)

    def _deliver(self, event: ProgressEvent) -> None:
        if self.callback is None:
            return
        try:
            self.callback(event)
        except Exception:  # a broken display must not stop a migration
            if not self._callback_failed:
                log.exception("progress callback failed; further failures are not logged")
                self._callback_failed = True

    def start(self, rows_total: Optional[int] = None, tables_total: Optional[int] = None, message: str = "") -> None:
        """Announce the step with the totals known up front."""
        self.rows_total = rows_total
        self.tables_total = tables_total
        self._deliver(self._event("start", message or f"{self.step} started"))

    def add(self, rows: int = 0, nbytes: int = 0, table: Optional[str] = None, force: bool = False) -> None:
        """Count rows/bytes done; emits a throttled ``progress`` event."""
        self.rows_done += rows
        self.bytes_done += nbytes
        now = time.monotonic()
        if force or now - self._last_emit >= self.interval:
            self._last_emit = now
            self._deliver(self._event("progress", table=table))

    def table_done(self, table: str, message: str = "") -> None:
        """One table (or unit of work) finished."""
        self.tables_done += 1
        self._deliver(self._event("table", message or f"{table} done", table=table))

    def log(self, message: str, level: str = "info", table: Optional[str] = None) -> None:
        """A log line for the caller, the module logger and the step's log file."""
        # info lines are narration for the caller and the log file; only trouble goes to logging
        getattr(log, "warning" if level == "warning" else "error" if level == "error" else "debug")(message)
        if self._log_file is not None:
            self._log_file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {level.upper()} {message}\n")
            self._log_file.flush()
        self._deliver(self._event("log", message, level=level, table=table))

    def watch(self, con) -> None:
        """Let a cancel interrupt a long SQLite statement on `con` (it then fails 'interrupted'),
        so a step that spends minutes in one query still stops within seconds."""
        if self.should_cancel is not None:
            con.set_progress_handler(lambda: 1 if self.should_cancel() else 0, 100_000)

    def check_cancel(self) -> None:
        """Raise `Cancelled` if the caller asked to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled(f"{self.step} cancelled by the caller")

    def finish(self, message: str = "") -> None:
        """Announce the end of the step and close the log file."""
        self._deliver(self._event("finish", message or f"{self.step} finished"))
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
