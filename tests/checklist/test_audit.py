import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from checklist.audit import AuditEvent, AuditImmutable, verify_chain

from .factories import gated, states_of
from checklist import actions

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(runbook, users):
    for st in states_of(runbook, gated(runbook)[0])[:5]:
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
    assert f"broken at event #{target.seq}" in capsys.readouterr().err


def test_verify_audit_finds_a_deleted_event(history):
    target = history[2]
    _tamper("DELETE FROM checklist_auditevent WHERE id = %s", [target.pk])
    ok, checked, broken, reason = verify_chain()
    assert not ok and broken == target.seq + 1


def test_verify_audit_confirms_a_whole_chain(history, capsys):
    call_command("verify_audit")
    assert "unbroken" in capsys.readouterr().out


def test_refusals_and_logins_are_audited(client, users, runbook):
    response = client.post("/login/", {"username": "member", "password": "pw-member"})
    assert response.status_code == 302
    client.post("/logout/")
    client.post("/login/", {"username": "member", "password": "wrong"})
    actions_seen = list(AuditEvent.objects.values_list("action", flat=True))
    assert "login" in actions_seen and "logout" in actions_seen and "login-failed" in actions_seen
    failed = AuditEvent.objects.filter(action="login-failed").last()
    assert "wrong" not in str(failed.after) and failed.actor_label == "member"
