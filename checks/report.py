"""The report every deployment check returns, and the error for input it cannot use.

A report is evidence: the job layer stores `to_dict()` as JSON, and later readers (success
criteria, rollback triggers, monitoring) pick figures out of it by key. So the keys are stable:
`figures` holds numbers under names such as `p95_ms`, `pool_utilization_pct`, `error_rate_pct`,
and each criterion says what was measured against what was expected.

Nothing in a report may hold a password or a secret value; checks redact URLs
(`checks.redact`) before they put them here.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

REPORT_VERSION = 1


class CheckInputError(ValueError):
    """The check was given input it cannot use: a missing file, a URL that does not parse.

    The message names the file or URL, with any password already redacted. The command maps
    this to exit code 2, distinct from a check that ran and found problems (exit code 1).
    """


@dataclass
class Criterion:
    """One thing the check decided: pass or fail, with the measurement behind the decision."""

    name: str
    ok: bool
    measured: Any = None
    expected: Any = None  # the threshold or expected value, as a figure or a short phrase
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "measured": self.measured,
            "expected": self.expected,
            "detail": self.detail,
        }


@dataclass
class Problem:
    """A finding an operator has to fix, located as precisely as the check can tell."""

    message: str
    criterion: str = ""
    path: str = ""  # e.g. "services[0].envs[2].value", or an env file's key
    line: int | None = None

    def to_dict(self) -> dict:
        return {
            "message": self.message,
            "criterion": self.criterion,
            "path": self.path,
            "line": self.line,
        }


@dataclass
class CheckReport:
    """What one run of one check found. `ok` is true only when every criterion passed."""

    name: str
    target: str = ""  # what was checked: a file path or a redacted URL
    criteria: list[Criterion] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # the options used, redacted
    started_at: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat()
    )
    duration_ms: float = 0.0
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def ok(self) -> bool:
        # A report with no criteria proves nothing, so it cannot pass.
        return bool(self.criteria) and all(c.ok for c in self.criteria)

    def add(self, name, ok, measured=None, expected=None, detail="") -> Criterion:
        """Record a criterion and return it."""
        criterion = Criterion(name, bool(ok), measured, expected, detail)
        self.criteria.append(criterion)
        return criterion

    def problem(self, message, criterion="", path="", line=None) -> Problem:
        """Record a finding and return it."""
        found = Problem(message, criterion, path, line)
        self.problems.append(found)
        return found

    def criterion(self, name) -> Criterion | None:
        """The criterion called `name`, or None."""
        return next((c for c in self.criteria if c.name == name), None)

    def finish(self) -> CheckReport:
        """Stamp the duration; checks call this just before returning."""
        self.duration_ms = round((time.perf_counter() - self._t0) * 1000, 1)
        return self

    def to_dict(self) -> dict:
        return {
            "report_version": REPORT_VERSION,
            "name": self.name,
            "ok": self.ok,
            "target": self.target,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "options": self.options,
            "criteria": [c.to_dict() for c in self.criteria],
            "figures": self.figures,
            "problems": [p.to_dict() for p in self.problems],
        }
