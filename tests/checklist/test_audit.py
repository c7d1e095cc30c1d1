import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from django.utils import timezone

from checklist.audit import GENESIS_HASH, AuditEvent, AuditImmutable, record, verify_chain

from .factories import gated, hand_states, states_of
from checklist import actions

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(runbook, users):
    for st in hand_states(runbook, gated(runbook)[0])[:5]:
        actions.tick(users["member"], st, "checked")
    return AuditEvent.objects.order_by("seq")


def test_every_change_is_chained(history):
    events = list(history)
    assert [e.action for e in events[:2]] == ["template-import", "runbook-start"]
    for prev, event in zip(events, events[1:]):
        assert event.prev_hash == prev.hash and event.seq == prev.seq + 1
    assert verify_chain()[0]


def test_the_orm_refuses_to_update_or_delete(history):
    event = history.first()
    event.action = "forged"
    with pytest.raises(AuditImmutable):
        event.save()
    with pytest.raises(AuditImmutable):
        event.delete()
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.all().delete()


def _require_pg():
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (the trigger exists only there)")


def test_postgresql_trigger_refuses_raw_update_and_delete(history):
    _require_pg()
    for sql in ("UPDATE checklist_auditevent SET action = 'forged'",
                "DELETE FROM checklist_auditevent"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)


def test_postgresql_trigger_refuses_truncate(history):
    _require_pg()
    with pytest.raises(DatabaseError, match="append-only.*TRUNCATE"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("TRUNCATE checklist_auditevent")
    assert AuditEvent.objects.count() == len(history)


def test_events_record_the_request_id_and_client_address(client, users, runbook):
    state = hand_states(runbook, gated(runbook)[0])[0]
    client.force_login(users["member"])
    response = client.post(f"/runbooks/{runbook.pk}/items/{state.pk}/tick/", {"note": "ok"},
                           REMOTE_ADDR="203.0.113.7", HTTP_X_REQUEST_ID="req-abc-12345678")
    assert response.status_code < 400
    event = AuditEvent.objects.filter(action="tick").last()
    assert (event.request_id, event.client_addr) == ("req-abc-12345678", "203.0.113.7")
    assert response["X-Request-ID"] == "req-abc-12345678"
    assert event.form == 2 and event.compute_hash() == event.hash
    # The id and address are hashed: changing either breaks the event's hash.
    event.client_addr = "198.51.100.1"
    assert event.compute_hash() != event.hash


def test_a_hostile_request_id_is_replaced(client, users):
    client.force_login(users["member"])
    response = client.get("/", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert response["X-Request-ID"] != "<script>alert(1)</script>"
    assert len(response["X-Request-ID"]) == 32
    client.post("/logout/", HTTP_X_REQUEST_ID="x; DROP TABLE")
    logout = AuditEvent.objects.get(action="logout")
    assert logout.request_id and "DROP" not in logout.request_id
    assert logout.client_addr == "127.0.0.1"


def test_events_hashed_in_the_old_form_still_verify(db):
    old = AuditEvent(seq=1, created_at=timezone.now(), actor_label="system", action="legacy",
                     prev_hash=GENESIS_HASH, form=1)
    old.hash = old.compute_hash()
    old.save()
    assert "form" not in old.content() and "request_id" not in old.content()
    new = record("after-upgrade")
    assert new.form == 2 and new.prev_hash == old.hash
    assert verify_chain() == (True, 2, None, "")


def _tamper(sql, params):
    """What an attacker with superuser rights could do: go around the trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE checklist_auditevent DISABLE TRIGGER checklist_audit_append_only")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE checklist_auditevent ENABLE TRIGGER checklist_audit_append_only")


def test_verify_audit_names_the_changed_event(history, capsys):
    target = history[3]
    _tamper("UPDATE checklist_auditevent SET actor_label = %s WHERE id = %s", ["mallory", target.pk])
    ok, checked, broken, reason = verify_chain()
    assert not ok and broken == target.seq and "content" in reason
    with pytest.raises(SystemExit) as exc:
        call_command("verify_audit")
    assert exc.value.code == 1
    assert f"event #{target.seq}: chain broken" in capsys.readouterr().err


def test_verify_audit_finds_a_deleted_event(history):
    target = history[2]
    _tamper("DELETE FROM checklist_auditevent WHERE id = %s", [target.pk])
    ok, checked, broken, reason = verify_chain()
    assert not ok and broken == target.seq + 1


def test_verify_audit_confirms_a_whole_chain(history, capsys):
    call_command("verify_audit")
    assert "chain unbroken, every check holds" in capsys.readouterr().out


def test_refusals_and_logins_are_audited(client, users, runbook):
    response = client.post("/login/", {"username": "member", "password": "pw-member"})
    assert response.status_code == 302
    client.post("/logout/")
    client.post("/login/", {"username": "member", "password": "wrong"})
    actions_seen = list(AuditEvent.objects.values_list("action", flat=True))
    assert "login" in actions_seen and "logout" in actions_seen and "login-failed" in actions_seen
    failed = AuditEvent.objects.filter(action="login-failed").last()
    assert "wrong" not in str(failed.after) and failed.actor_label == "member"


def test_audit_key_generates_a_usable_key_and_prints_its_public_half(settings, capsys):
    from checklist import chain

    call_command("audit_key", "generate")
    key_text = capsys.readouterr().out.strip()
    key = chain.load_private_key(key_text)
    settings.AUDIT_SIGNING_KEY = key_text
    call_command("audit_key", "public")
    public = chain.load_public_key(capsys.readouterr().out)
    document = chain.sign_digest(key, {"seq": 1})
    assert chain.check_digest_signature(public, document) is None
    settings.AUDIT_SIGNING_KEY = "not base64!"
    with pytest.raises(CommandError, match="not base64"):
        call_command("audit_key", "public")
