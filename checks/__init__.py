"""The deployment checks as a plain-Python library: no Django, no app, no database of ours.

Each check takes paths, URLs and thresholds and returns a `report.CheckReport`; `registry` lists
them with their options. The Django app around them (`deploychecks/`: settings per runbook,
jobs, monitoring, triggers, notifications) imports this package, never the other way round;
tests/test_layout.py imports it in a process where Django cannot be imported.
"""
