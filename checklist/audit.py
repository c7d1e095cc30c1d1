"""The append-only, hash-chained audit log.

Every state change writes one AuditEvent through `record()`, inside the transaction that makes the
change. Each event stores the previous event's hash and its own hash over a canonical JSON form of
its content, so changing, removing or reordering any row breaks the chain at that row, and
`verify_chain()` names it. The ORM refuses to update or delete an event; on PostgreSQL triggers
(migrations 0002 and 0004) refuse UPDATE, DELETE and TRUNCATE too, for anything that goes around
the ORM. The chain alone has no secret, so someone with database access can rewrite it and
recompute every later hash: the signed digests (checklist.digests) are what catch that.

Every event also records the request id and the client address of the request (or Celery task)
that caused it, taken from a context variable the middleware sets, so callers of `record()` need
not pass them.
"""
import contextvars
import json
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from . import chain
from .chain import GENESIS_HASH

# (request_id, client_addr) of the request or task being served; ("", "") outside one.
_ORIGIN = contextvars.ContextVar("audit_origin", default=("", ""))
# Any fixed number: it names the advisory lock that serialises appends to the chain.
_CHAIN_LOCK_KEY = 7_146_381_201


class AuditImmutable(Exception):
    """Raised when code tries to change or remove an audit event."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditImmutable("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise AuditImmutable("Audit events are append-only: they cannot be deleted.")


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    # Plain references, no database constraint: deleting a user or a runbook must never need to
    # touch (and so be refused by) the immutable audit rows that mention it.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=50, db_index=True)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    runbook = models.ForeignKey(
        "checklist.Runbook", null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="audit_events",
    )
    phase = models.ForeignKey(
        "checklist.Phase", null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    item = models.ForeignKey(
        "checklist.Item", null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    client_addr = models.CharField(max_length=45, blank=True, default="")
    # Which canonical form the hash uses (checklist.chain): 1 for events written before request
    # ids were recorded, 2 since. Old events keep verifying under the form they were hashed in.
    form = models.PositiveSmallIntegerField(default=1)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["runbook", "seq"], name="audit_runbook_seq")]

    def __str__(self):
        return f"#{self.seq} {self.action} by {self.actor_label or 'system'}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutable("Audit events are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Audit events are append-only: they cannot be deleted.")

    def content(self):
        """The fields the hash covers, as JSON-native values."""
        return {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "runbook_id": self.runbook_id,
            "phase_id": self.phase_id,
            "item_id": self.item_id,
            "before": self.before,
            "after": self.after,
            "prev_hash": self.prev_hash,
            **({"form": self.form, "request_id": self.request_id, "client_addr": self.client_addr}
               if self.form >= 2 else {}),
        }

    def compute_hash(self):
        return chain.event_hash(self.content(), self.form)

    def body_sha256(self):
        return chain.body_hash(self.content())


@contextmanager
def origin(request_id="", client_addr=""):
    """Attribute every event recorded inside the block to this request id and client address."""
    token = _ORIGIN.set((request_id[:64], client_addr[:45]))
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def set_origin(request_id="", client_addr=""):
    """Like `origin()` for callers without a block (a Celery task's pre/post-run signals)."""
    return _ORIGIN.set((request_id[:64], client_addr[:45]))


def reset_origin(token):
    _ORIGIN.reset(token)


def _jsonable(value):
    """Round-trip through JSON so the stored value and the hashed value are the same."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


def _scrubbed(value):
    from migration.redact import scrub

    return json.loads(scrub(json.dumps(value, default=str)))


def record(action, *, actor=None, actor_label="", obj=None, runbook=None, phase=None, item=None,
           before=None, after=None):
    """Append one event to the chain and return it.

    Call it inside the transaction that makes the change it describes, so the change and its
    audit event are committed together or not at all.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        # On SQLite the IMMEDIATE transaction already holds the database's single write lock.
        last = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        if actor is not None and not actor.is_authenticated:
            actor = None
        request_id, client_addr = _ORIGIN.get()
        event = AuditEvent(
            seq=(last["seq"] + 1) if last else 1,
            created_at=timezone.now(),
            actor=actor,
            actor_label=actor_label or (actor.get_username() if actor else "system"),
            action=action,
            object_type=type(obj).__name__ if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            runbook=runbook,
            phase=phase,
            item=item,
            before=_jsonable(before),
            # A refusal quotes what was refused: scrub any credential it carries (a malformed
            # URL is still a password) before it is hashed, stored and exported.
            after=_jsonable(_scrubbed(after) if action == "denied" else after),
            prev_hash=last["hash"] if last else GENESIS_HASH,
            request_id=request_id,
            client_addr=client_addr,
            form=chain.CURRENT_FORM,
        )
        event.hash = event.compute_hash()
        event.save()
        return event


def verify_chain():
    """Recompute the chain; return (ok, checked_count, first_broken_seq, reason)."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            return False, checked, event.seq, f"sequence gap: expected #{expected_seq}"
        if event.prev_hash != expected_prev:
            return False, checked, event.seq, "previous-hash link does not match the event before"
        if event.compute_hash() != event.hash:
            return False, checked, event.seq, "content does not match its hash"
        expected_prev = event.hash
        expected_seq += 1
        checked += 1
    return True, checked, None, ""
