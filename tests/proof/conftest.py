"""Fixtures of the proof jobs (issue 14): a runbook with its gated phases opened as far as a
test needs, and the lead's proof settings saved."""
import pytest

from deploychecks.models import RunbookProofSettings
from tests.checklist.factories import sign_off_through
from tests.deploychecks.conftest import pki  # noqa: F401  (a CA and a 127.0.0.1 certificate)
from tests.worker import start_worker

from .do_fake import FakeDO


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


@pytest.fixture
def fake_do(pki, monkeypatch):
    """The local DigitalOcean API (tests/proof/do_fake.py) on HTTPS with the test CA."""
    # requests (under pydo) trusts the test CA through the variable it always reads.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_file))
    # checks/http_request.py (the archived logs) trusts the system store, which this names.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    fake = FakeDO(pki.server)
    yield fake
    fake.server.shutdown()


@pytest.fixture
def do_worker(transactional_db, pki):
    w = start_worker(extra_env={"REQUESTS_CA_BUNDLE": str(pki.ca_file),
                                "SSL_CERT_FILE": str(pki.ca_file)})
    yield w
    w.stop()
