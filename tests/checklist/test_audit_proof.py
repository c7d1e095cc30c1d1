"""Audit you can prove: tampering with the database as someone without the signing key would,
each way the issue names, and verify_audit exiting 1 naming the event or object; the evidence pack
verified offline with only the public key."""
import json

import pytest
from django.core.management import call_command
from django.db import connection

from checklist import actions, chain, digests
from checklist.audit import AuditEvent
from checklist.models import ItemNote, SignOff

from .factories import complete_phase, gated, hand_states, states_of

pytestmark = pytest.mark.django_db


def verify(capsys):
    """Run verify_audit; return (exit code, stdout, stderr)."""
    try:
        call_command("verify_audit")
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _superuser_sql(sql, params=()):
    """What an attacker with superuser rights on the database does: go around the triggers."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (the triggers exist only there)")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.fixture
def proven(runbook, users, django_capture_on_commit_callbacks):
    """A history with signed digests: one mid-way, one at a sign-off (written after commit)."""
    first = gated(runbook)[0]
    states = hand_states(runbook, first)
    for st in states[:3]:
        actions.tick(users["member"], st, "checked")
    digests.write("test")
    complete_phase(runbook, first, users["member"])
    with django_capture_on_commit_callbacks(execute=True):
        actions.sign_off(users["lead"], runbook, first, "ok")
    actions.add_note(users["member"], states_of(runbook, gated(runbook)[1])[0], "after the digest")
    return runbook


def test_an_untouched_log_verifies(proven, capsys):
    code, out, err = verify(capsys)
    assert code == 0, err
    assert "verified" in out and "2 signed digests" in out


def test_sign_off_writes_a_signed_digest_after_commit(proven, settings):
    files = digests.digest_files()
    assert len(files) == 2
    document = json.loads(files[-1].read_text())
    payload = document["digest"]
    sign_off = AuditEvent.objects.get(action="sign-off")
    assert payload["reason"] == "sign-off" and payload["seq"] == sign_off.seq
    assert payload["head"] == sign_off.hash and payload["counts"]["sign-off"] == 1
    assert payload["previous"] == chain.digest_sha256(json.loads(files[0].read_text()))
    assert chain.check_digest_signature(digests.public_key(), document) is None


def test_no_digest_when_the_action_rolls_back(runbook, users, django_capture_on_commit_callbacks):
    with pytest.raises(actions.Refused):
        with django_capture_on_commit_callbacks(execute=True):
            actions.sign_off(users["lead"], runbook, gated(runbook)[0], "incomplete")
    assert digests.digest_files() == []


def test_an_edited_event_with_every_later_hash_recomputed_is_found(proven, capsys):
    # The fourth item write: after digest 1 (the first phase has three hand items; the rest of
    # it is job-bound, overridden by complete_phase).
    target = AuditEvent.objects.filter(action__in=("tick", "override")).order_by("seq")[3]
    events = list(AuditEvent.objects.filter(seq__gte=target.seq).order_by("seq"))
    prev = AuditEvent.objects.get(seq=target.seq - 1).hash
    for event in events:  # the project's own hashing code, no key needed
        if event.pk == target.pk:
            event.actor_label = "mallory"
        event.prev_hash = prev
        event.hash = event.compute_hash()
        prev = event.hash
        _superuser_sql("UPDATE checklist_auditevent SET actor_label = %s, prev_hash = %s, "
                       "hash = %s WHERE id = %s",
                       [event.actor_label, event.prev_hash, event.hash, event.pk])
    from checklist.audit import verify_chain

    assert verify_chain()[0], "the rewrite must fool the bare chain, or this test proves nothing"
    code, out, err = verify(capsys)
    first_digest_seq = json.loads(digests.digest_files()[0].read_text())["digest"]["seq"]
    assert code == 1
    assert f"one of events #{first_digest_seq + 1}..#" in err
    assert first_digest_seq < target.seq


def test_deleting_the_newest_events_is_found(proven, capsys):
    signed = json.loads(digests.digest_files()[-1].read_text())["digest"]["seq"]
    _superuser_sql("DELETE FROM checklist_auditevent WHERE seq > %s", [signed - 3])
    code, out, err = verify(capsys)
    assert code == 1
    assert f"covers events up to #{signed} but the chain ends at #{signed - 3}" in err


def test_truncate_is_found(proven, capsys):
    _superuser_sql("TRUNCATE checklist_auditevent")
    assert AuditEvent.objects.count() == 0
    code, out, err = verify(capsys)
    assert code == 1 and "the chain ends at #0" in err


def test_a_tick_written_in_sql_with_no_event_is_found(proven, capsys):
    state = states_of(proven, gated(proven)[1])[2]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE checklist_itemstate SET checked = true WHERE id = %s", [state.pk])
    code, out, err = verify(capsys)
    assert code == 1
    assert f"ItemState #{state.pk}: checked is True in the table" in err


def test_an_untick_in_sql_names_the_event_it_contradicts(proven, capsys):
    state = hand_states(proven, gated(proven)[0])[0]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE checklist_itemstate SET checked = false WHERE id = %s", [state.pk])
    last = AuditEvent.objects.filter(object_type="ItemState", object_id=str(state.pk),
                                     action="tick").last()
    code, out, err = verify(capsys)
    assert code == 1
    assert f"event #{last.seq}, ItemState #{state.pk}: checked is False in the table but " \
           f"event #{last.seq} says True" in err


def test_a_note_added_around_the_app_is_found(proven, users, capsys):
    state = states_of(proven, gated(proven)[1])[1]
    note = ItemNote.objects.create(state=state, author=users["member"], text="forged")
    code, out, err = verify(capsys)
    assert code == 1 and f"ItemNote #{note.pk} on ItemState #{state.pk}: no audit event" in err


def test_a_sign_off_inserted_around_the_app_is_found(proven, users, capsys):
    forged = SignOff.objects.create(runbook=proven, phase=gated(proven)[1], lead=users["lead"])
    code, out, err = verify(capsys)
    assert code == 1 and f"SignOff #{forged.pk}: this row has no audit event" in err


def test_a_forged_or_removed_digest_is_found(proven, capsys):
    files = digests.digest_files()
    document = json.loads(files[0].read_text())
    document["digest"]["seq"] += 1
    files[0].write_text(json.dumps(document))
    code, out, err = verify(capsys)
    assert code == 1 and f"{files[0].name}: signature does not verify" in err
    files[0].unlink()
    code, out, err = verify(capsys)
    assert code == 1 and f"{files[1].name}: its previous-digest hash does not match" in err


def test_the_beat_digest_is_written_only_when_something_changed(proven, users):
    from checklist.tasks import write_audit_digest

    before = len(digests.digest_files())
    assert write_audit_digest() is not None  # the fixture's last note came after its digests
    assert write_audit_digest() is None
    before += 1
    actions.add_note(users["member"], states_of(proven, gated(proven)[1])[0], "more")
    assert write_audit_digest() is not None
    assert len(digests.digest_files()) == before + 1


def test_the_history_page_lists_digests_and_shows_a_rewrite(proven, client, users):
    from django.urls import reverse

    client.force_login(users["auditor"])
    url = reverse("history", args=[proven.pk])
    body = client.get(url).content.decode()
    assert "✔ Verified" in body and "Signed digests" in body and "sign-off" in body
    last = AuditEvent.objects.order_by("-seq").first()
    signed = json.loads(digests.digest_files()[-1].read_text())["digest"]["seq"]
    target = AuditEvent.objects.get(seq=signed)
    target.actor_label = "mallory"
    _superuser_sql("UPDATE checklist_auditevent SET actor_label = %s, hash = %s WHERE id = %s",
                   [target.actor_label, target.compute_hash(), target.pk])
    following = AuditEvent.objects.filter(seq__gt=signed).order_by("seq")
    prev = target.compute_hash()
    for event in following:
        event.prev_hash = prev
        prev = event.compute_hash()
        _superuser_sql("UPDATE checklist_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
                       [event.prev_hash, prev, event.pk])
    assert last.seq >= signed
    body = client.get(url).content.decode()
    assert "Does not match its signed digests" in body and f"event #{signed}" in body
