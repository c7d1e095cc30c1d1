"""Notifications over real sockets: a tiny SMTP sink and a webhook receiver on loopback.

The SMTP sink speaks just enough SMTP for smtplib (Django's SMTP backend); the webhook receiver
answers 500 to its first N requests so the retries are proven, and records every body.
"""
import email
import json
import socketserver
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from checklist import actions, job_actions
from deploychecks import notify
from deploychecks.models import Notification, RunbookCheckSettings
from tests.checklist.factories import complete_phase, gated, sign_off_through
from tests.conftest import ended, wait_for_run

from .test_deploy_jobs import assert_secret_absent, configure, fake_validate

pytestmark = pytest.mark.django_db(transaction=True)

HOOK_TOKEN = "T0k3n-hook-9f8e7d6c5b4a"
TARGET_PW = "tgt-Pa55-q7w8e9"


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self):
        sink = self.server.sink
        self.wfile.write(b"220 sink ESMTP\r\n")
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode(errors="replace").strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 sink\r\n")
            elif verb == "MAIL":
                sender, rcpts = line.decode().split(":", 1)[1].strip(), []
                self.wfile.write(b"250 OK\r\n")
            elif verb == "RCPT":
                rcpts.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self.wfile.write(b"250 OK\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = []
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                message = email.message_from_bytes(b"".join(data), policy=policy.default)
                with sink.lock:
                    sink.messages.append({"from": sender, "to": rcpts, "message": message,
                                          "raw": b"".join(data).decode(errors="replace")})
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # RSET, NOOP and anything else
                self.wfile.write(b"250 OK\r\n")


class SMTPSink:
    def __init__(self):
        self.messages, self.lock = [], threading.Lock()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
        self.server.daemon_threads = True
        self.server.sink = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def settings(self):
        return override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
                                 EMAIL_HOST="127.0.0.1", EMAIL_PORT=self.port,
                                 EMAIL_USE_TLS=False, EMAIL_HOST_USER="",
                                 EMAIL_HOST_PASSWORD="")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class WebhookReceiver:
    """Answers 500 to the first `fail_first` requests, then 204; keeps every request."""

    def __init__(self, fail_first=0):
        self.requests, self.fail_first, self.lock = [], fail_first, threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "body": body,
                                              "type": self.headers.get("Content-Type")})
                    status = 500 if len(receiver.requests) <= receiver.fail_first else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{HOOK_TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self):
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp():
    sink = SMTPSink()
    with sink.settings():
        yield sink
    sink.close()


@pytest.fixture
def hook():
    receiver = WebhookReceiver(fail_first=2)
    yield receiver
    receiver.close()


@pytest.fixture
def inline():
    with override_settings(DEPLOYCHECKS_NOTIFY_INLINE=True):
        yield


def subscribe(runbook, lead, hook_url, emails="ops@example.com, lead@example.com"):
    actions.set_target(lead, runbook, f"postgres://app:{TARGET_PW}@127.0.0.1:5432/nowhere")
    cs = RunbookCheckSettings.for_runbook(runbook)
    cs.notify_emails = emails
    cs.set_webhook_url(hook_url)
    cs.save()
    return cs


def assert_no_secrets(sink=None, hook=None):
    for secret in (HOOK_TOKEN, TARGET_PW):
        for m in (sink.messages if sink else []):
            assert secret not in m["raw"]
        for r in (hook.requests if hook else []):
            assert secret.encode() not in r["body"]
        assert_secret_absent(secret)


def test_sign_off_notifies_by_email_and_webhook_after_retries(runbook, users, smtp, hook,
                                                              inline):
    subscribe(runbook, users["lead"], hook.url)
    phase = gated(runbook)[0]
    complete_phase(runbook, phase, users["member"])
    actions.sign_off(users["lead"], runbook, phase, "looks good")

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert sorted(mail["to"]) == ["lead@example.com", "ops@example.com"]
    assert mail["message"]["Subject"] == "[mingus-deploy] MINGUS production: Phase signed off"
    assert "Pre-Deployment Phase signed off by lead" in mail["message"].get_content()

    # The receiver failed twice; the third attempt got through, and each attempt is recorded.
    assert len(hook.requests) == 3
    assert hook.requests[-1]["type"] == "application/json"
    body = hook.bodies()[-1]
    assert body["event"] == "sign-off" and body["runbook"]["id"] == runbook.pk
    note = Notification.objects.get(channel="webhook", event="sign-off")
    assert note.state == "sent"
    assert [(a["ok"], a["error"]) for a in note.attempts] == [
        (False, "HTTP 500"), (False, "HTTP 500"), (True, "")]
    assert note.recipients == f"http://127.0.0.1:{hook.server.server_address[1]}/***"
    assert_no_secrets(smtp, hook)


def test_a_webhook_that_never_answers_ends_failed_after_bounded_attempts(runbook, users,
                                                                         inline):
    down = WebhookReceiver(fail_first=100)
    try:
        with override_settings(DEPLOYCHECKS_NOTIFY_ATTEMPTS=3):
            subscribe(runbook, users["lead"], down.url, emails="")
            notify.dispatch("test", runbook, "subject", "text")
        note = Notification.objects.get(channel="webhook")
        assert note.state == "failed" and len(note.attempts) == 3
        assert len(down.requests) == 3
    finally:
        down.close()
    # Nothing listens any more: a connection error is recorded without the URL in it.
    subscribe(runbook, users["lead"], down.url, emails="")
    with override_settings(DEPLOYCHECKS_NOTIFY_ATTEMPTS=2):
        notify.dispatch("test-2", runbook, "subject", "text")
    note = Notification.objects.get(event="test-2")
    assert note.state == "failed" and note.attempts[0]["error"] == "ConnectError"
    assert_no_secrets()


def test_go_live_authorization_notifies(runbook, users, smtp, inline, settings):
    settings.GO_LIVE_APPROVALS_REQUIRED = 1
    subscribe(runbook, users["lead"], "", emails="ops@example.com")
    sign_off_through(runbook, 4, users["member"], users["lead"])
    smtp.messages.clear()
    actions.request_go_live(users["lead"], runbook, "ready")
    actions.approve_go_live(users["lead2"], runbook, "yes")
    subjects = [m["message"]["Subject"] for m in smtp.messages]
    assert subjects == ["[mingus-deploy] MINGUS production: Go-live authorized"]
    assert not Notification.objects.filter(channel="webhook").exists()


def test_trigger_firing_notifies_once_with_its_evidence(runbook, users, smtp, hook, inline):
    hook.fail_first = 0
    subscribe(runbook, users["lead"], hook.url)
    sign_off_through(runbook, 2, users["member"], users["lead"])
    smtp.messages.clear()
    hook.requests.clear()
    run = fake_validate(runbook, users["member"], ok=False, mismatches=7, missing_rows=0,
                        rows_checked=900)
    fake_validate(runbook, users["member"], ok=False, mismatches=8, missing_rows=0,
                  rows_checked=900)
    fired = [b for b in hook.bodies() if b["event"] == "trigger-fired"]
    assert len(fired) == 1
    assert fired[0]["data"]["trigger"] == "data-corruption"
    assert fired[0]["data"]["evidence"]["run_id"] == run.pk
    assert fired[0]["data"]["figures"]["mismatches"] == 7
    # The failed validate runs notified as job failures too (email and webhook each).
    assert sum(1 for b in hook.bodies() if b["event"] == "job-failed") == 2
    assert any("rollback trigger" in m["message"]["Subject"] for m in smtp.messages)
    assert_no_secrets(smtp, hook)


def test_digest_goes_to_leads_with_progress_failures_and_triggers(runbook, users, smtp, inline):
    User.objects.filter(username="lead").update(email="lead@example.com")
    User.objects.filter(username="member").update(email="member@example.com")
    sign_off_through(runbook, 2, users["member"], users["lead"])
    fake_validate(runbook, users["member"], ok=False, mismatches=1, missing_rows=0,
                  rows_checked=10)
    smtp.messages.clear()
    note = notify.send_digest()
    assert note.state == "sent"
    assert len(smtp.messages) == 1 and smtp.messages[0]["to"] == ["lead@example.com"]
    text = smtp.messages[0]["message"].get_content()
    assert "MINGUS production" in text and "open phase: Deployment Phase" in text
    assert "validate run #" in text and "failed in the last 24 h" in text
    assert "ROLLBACK TRIGGER FIRING: Data corruption detected" in text


@pytest.mark.worker
def test_a_failed_job_on_a_worker_is_delivered_to_the_webhook(runbook, users, worker):
    hook = WebhookReceiver(fail_first=1)
    try:
        subscribe(runbook, users["lead"], hook.url, emails="")
        run = wait_for_run(job_actions.start_job(users["member"], runbook, "check-app-spec"), ended)
        assert run.state == "failed"  # no app_spec_path configured
        note = Notification.objects.get(event="job-failed")
        deadline = time.monotonic() + 60
        while note.state == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the worker's progress, with a deadline
            note.refresh_from_db()
        assert note.state == "sent" and len(note.attempts) == 2
        body = hook.bodies()[-1]
        assert body["data"]["kind"] == "check-app-spec"
        assert "option 'path' is required" in body["text"]
    finally:
        hook.close()
    assert_no_secrets(hook=hook)
