"""Replay the audit log into the state it implies and compare it with the tables.

An event's `after` holds the after-state of the object it names (object_type, object_id). Replay
folds the `after` of every event per object, in order, so the last value of each field wins, and
compares the fields a registered snapshot also has with the row as it is now. So a tick written
in SQL with no event, a sign-off deleted or inserted by hand, or a note nobody recorded shows up
as the first object (and the event it last agreed with) that disagrees.

Generic on purpose: a new action that records `after=<snapshot of its object>` is replayed with
no change here, as long as its object type is registered below (`REPLAYED`). Types not registered
are not compared.
"""
from dataclasses import dataclass
from typing import Callable

from .audit import AuditEvent
from .models import (
    ContactValue, GoLiveApproval, GoLiveRequest, ItemNote, ItemState, SchemaApproval, SignOff,
)


def _user(user):
    return user.get_username() if user is not None else None


def item_snapshot(state):
    """An item's state as its audit events record it (their `after`)."""
    return {
        "checked": state.checked,
        "checked_by": _user(state.checked_by),
        "checked_at": state.checked_at.isoformat() if state.checked_at else None,
        "not_applicable": state.not_applicable,
        "na_reason": state.na_reason,
        "earned_by": state.earned_by,
        "earned_run": state.earned_run_id,
        "overridden": state.overridden,
        "override_reason": state.override_reason,
        "version": state.version,
    }


def sign_off_snapshot(sign_off):
    return {"phase": sign_off.phase.title, "comment": sign_off.comment,
            "withdrawn": sign_off.withdrawn_at is not None, "reason": sign_off.withdrawn_reason}


def go_live_snapshot(request):
    # Approvals are rows of their own (GoLiveApproval), each with its event.
    return {"state": request.state, "comment": request.comment}


@dataclass
class Replayed:
    model: type
    snapshot: Callable
    # The state of a row made without an event of its own (item states and contact values are
    # created in bulk when a runbook starts); None: every row must have an event.
    initial: dict | None = None
    related: tuple = ()


REPLAYED = {
    "ItemState": Replayed(ItemState, item_snapshot, initial={
        "checked": False, "checked_by": None, "checked_at": None, "not_applicable": False,
        "na_reason": "", "earned_by": "", "earned_run": None, "overridden": False,
        "override_reason": "", "version": 0}, related=("checked_by",)),
    "SignOff": Replayed(SignOff, sign_off_snapshot, related=("phase",)),
    "GoLiveRequest": Replayed(GoLiveRequest, go_live_snapshot),
    "GoLiveApproval": Replayed(GoLiveApproval, lambda a: {"comment": a.comment}),
    "SchemaApproval": Replayed(SchemaApproval, lambda a: {"sha256": a.sha256,
                                                          "comment": a.comment}),
    "ContactValue": Replayed(ContactValue, lambda c: {"value": c.value}, initial={"value": ""}),
}

# Events that describe an attempt or a read, not an object's new state.
NOT_STATE = {"denied", "export"}
# Events whose `after["note"]` (when not empty) is one ItemNote row on the item's state.
NOTE_FIELD = "note"


@dataclass
class Disagreement:
    seq: int  # the event to look at (0 when the object has no event at all)
    where: str
    reason: str

    def __str__(self):
        at = f"event #{self.seq}, " if self.seq else ""
        return f"{at}{self.where}: {self.reason}"


def _fold():
    """{(object_type, object_id): (folded after-state, last event seq)} and the notes implied."""
    folded, notes = {}, {}
    events = (AuditEvent.objects.filter(object_type__in=list(REPLAYED))
              .exclude(action__in=NOT_STATE).order_by("seq")
              .values_list("seq", "object_type", "object_id", "after"))
    for seq, object_type, object_id, after in events.iterator(chunk_size=5000):
        if not isinstance(after, dict):
            continue
        state, _ = folded.get((object_type, object_id), ({}, 0))
        folded[(object_type, object_id)] = ({**state, **after}, seq)
        if object_type == "ItemState" and after.get(NOTE_FIELD):
            notes.setdefault(object_id, []).append((seq, after[NOTE_FIELD]))
    return folded, notes


def compare():
    """Every disagreement between the replayed log and the tables, first event first."""
    folded, notes = _fold()
    found = []
    for object_type, spec in REPLAYED.items():
        seen = set()
        for row in spec.model.objects.select_related(*spec.related).order_by("pk").iterator(
                chunk_size=2000):
            key = (object_type, str(row.pk))
            seen.add(key)
            where = f"{object_type} #{row.pk}"
            actual = spec.snapshot(row)
            if key in folded:
                implied, seq = folded[key]
            elif spec.initial is not None:
                implied, seq = spec.initial, 0
            else:
                found.append(Disagreement(0, where, "this row has no audit event (written "
                                                    "around the app)"))
                continue
            for field in sorted(set(implied) & set(actual)):
                if implied[field] != actual[field]:
                    said = f"event #{seq} says" if seq else "with no event since it was made, " \
                                                              "the log implies"
                    found.append(Disagreement(seq, where, f"{field} is {actual[field]!r} in the "
                                                          f"table but {said} {implied[field]!r}"))
                    break
        for key, (_, seq) in folded.items():
            if key[0] == object_type and key not in seen:
                found.append(Disagreement(seq, f"{object_type} #{key[1]}",
                                          "the audit log records it but the row is gone"))
    found += _compare_notes(notes)
    found.sort(key=lambda d: (d.seq == 0, d.seq))
    return found


def _compare_notes(implied):
    found = []
    rows = {}
    for pk, state_id, text in ItemNote.objects.order_by("pk").values_list("pk", "state_id", "text"):
        rows.setdefault(str(state_id), []).append((pk, text))
    for state_id in sorted(set(implied) | set(rows), key=int):
        want = [text for _, text in implied.get(state_id, [])]
        have = [text for _, text in rows.get(state_id, [])]
        if want == have:
            continue
        for n in range(max(len(want), len(have))):
            if n >= len(have):
                seq = implied[state_id][n][0]
                found.append(Disagreement(seq, f"ItemState #{state_id}",
                                          "the note this event records is missing from the table"))
                break
            if n >= len(want) or want[n] != have[n]:
                seq = implied[state_id][n][0] if n < len(want) else 0
                found.append(Disagreement(seq, f"ItemNote #{rows[state_id][n][0]} on ItemState "
                                               f"#{state_id}",
                                          "no audit event records this note" if n >= len(want)
                                          else "its text differs from the note the event records"))
                break
    return found
