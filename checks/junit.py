"""Reading a JUnit XML report (what pytest --junitxml, Playwright, Jest and most CI runners
write) and deciding, item by item, whether the tests a lead mapped to an item passed.

A mapped item passes when at least one test matches one of its patterns and every matching test
passed; a skipped test proves nothing, so it fails the item, and so does a pattern that matches
no test (the report does not hold the proof the mapping promises). Plain Python, no Django.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .report import CheckInputError
from .spec_file import read_text


@dataclass(frozen=True)
class Case:
    name: str  # classname.name, or name alone when there is no classname
    outcome: str  # passed, failed, error, skipped
    seconds: float
    message: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "outcome": self.outcome, "seconds": self.seconds,
                "message": self.message}


def parse(path) -> list[Case]:
    """Every <testcase> of the report; CheckInputError for anything that is not a JUnit report."""
    text = read_text(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CheckInputError(f"{path} is not XML: {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise CheckInputError(f"{path} is not a JUnit report (its root is <{root.tag}>)")
    cases = []
    for case in root.iter("testcase"):
        name, cls = case.get("name", ""), case.get("classname", "")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (found.get("message") or (found.text or "").strip())[:300]
                break
        try:
            seconds = float(case.get("time") or 0)
        except ValueError:
            seconds = 0.0
        cases.append(Case(f"{cls}.{name}" if cls else name, outcome, seconds, message))
    if not cases:
        raise CheckInputError(f"{path} holds no test cases")
    return cases


def matches(case: Case, pattern: str) -> bool:
    """A pattern names a test exactly, or a prefix ending in '.' or '::' (a module or class)."""
    return case.name == pattern or (pattern.endswith((".", "::")) and
                                    case.name.startswith(pattern))


def judge(cases: list[Case], mapping: dict) -> dict:
    """item -> {ok, tests: [...], reason} for every item of `mapping` (item -> [pattern])."""
    out = {}
    for item, patterns in mapping.items():
        if isinstance(patterns, str):
            patterns = [patterns]
        found = [c for c in cases if any(matches(c, p) for p in patterns)]
        unmatched = [p for p in patterns if not any(matches(c, p) for c in cases)]
        bad = [c for c in found if c.outcome != "passed"]
        if unmatched:
            reason = f"no test matches {', '.join(unmatched)}"
        elif bad:
            reason = "; ".join(f"{c.name} {c.outcome}" for c in bad[:5])
        else:
            reason = f"{len(found)} test(s) passed: " + ", ".join(c.name for c in found[:8])
        out[item] = {"ok": bool(found) and not bad and not unmatched, "reason": reason[:500],
                     "tests": [c.to_dict() for c in found]}
    return out
