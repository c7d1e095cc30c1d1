"""Fixtures of the proof jobs (issue 14): a runbook with its gated phases opened as far as a
test needs, and the lead's proof settings saved."""
import pytest

from deploychecks.models import RunbookProofSettings
from tests.checklist.factories import sign_off_through


def open_through(runbook, users, phases):
    """Sign off the first `phases` gated phases, so the next one's items can be earned."""
    sign_off_through(runbook, phases, users["member"], users["lead"])
    return runbook


def proof_settings(runbook, **fields):
    ps = RunbookProofSettings.of(runbook)
    for key, value in fields.items():
        setattr(ps, key, value)
    ps.save()
    return ps


@pytest.fixture
def open_migration(runbook, users):
    return open_through(runbook, users, 1)


@pytest.fixture
def open_deployment(runbook, users):
    return open_through(runbook, users, 2)
