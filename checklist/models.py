"""The checklist as data.

A ChecklistTemplate is one imported version of a Markdown checklist (source text and sha256 kept).
Its Phases (gated, rollback, success) hold Groups, which hold Items. A Runbook is one deployment
working through one template version: it holds one ItemState per item, sign-offs, go-live
requests and approvals, and the emergency contact values. Decisions live in rules.py, state changes
in actions.py; the models only hold data and small derived properties.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone

from .audit import AuditEvent  # noqa: F401  (the audit log is part of this app's models)


class ChecklistTemplate(models.Model):
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=300, blank=True)
    subtitle = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source_text = models.TextField()
    sha256 = models.CharField(max_length=64)
    guidance = models.JSONField(default=list, blank=True)  # [{"title", "markdown"}]
    computed_sections = models.JSONField(default=list, blank=True)
    # What the import changed or left out ([{"line", "message"}]), shown on the template page.
    import_notes = models.JSONField(default=list, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="template_name_version"),
            models.UniqueConstraint(fields=["name", "sha256"], name="template_name_sha256"),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"


class Phase(models.Model):
    GATED, ROLLBACK, SUCCESS, OPEN = "gated", "rollback", "success", "open"
    KIND_CHOICES = [(GATED, "Gated phase"), (ROLLBACK, "Rollback plan"), (SUCCESS, "Success criteria"),
                    (OPEN, "Not gated")]

    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    # What code finds the phase by (checklist/item_keys.py), never its title or its place.
    key = models.SlugField(max_length=100, blank=True, default="",
                           help_text="stable key code finds the phase by")
    # A rollback plan or success criteria opens when this gated phase opens (set at import).
    opens_with = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="opens",
                                   help_text="rollback plan or success criteria: the gated phase "
                                             "whose opening opens it")
    source_line = models.PositiveIntegerField(null=True, blank=True)
    # Why the phase is gated or not: what the importer read from its heading, or a lead's change.
    gating_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["template", "order"]
        constraints = [
            models.UniqueConstraint(fields=["template", "order"], name="phase_template_order")
        ]

    def __str__(self):
        return self.title

    @property
    def short_title(self):
        """'Pre-Deployment Phase' reads as 'Pre-Deployment' in sentences."""
        return self.title.removesuffix(" Phase")


class Group(models.Model):
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="groups")
    order = models.PositiveIntegerField()
    section = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=200)
    source_line = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["phase", "order"]

    def __str__(self):
        return self.title


class Item(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="items")
    # The item's template version, written down beside its group's (never changes: an item does
    # not move between versions) so that the database itself holds a key unique in the version.
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="+",
                                 editable=False)
    order = models.PositiveIntegerField()
    text = models.CharField(max_length=500)  # back-ticked code kept as back-ticks
    # What code and bindings find the item by, unique within its version (checklist/item_keys.py):
    # set by the importer for known items, changed by a lead (actions.set_item_key).
    key = models.SlugField(max_length=100, blank=True, default="",
                           help_text="stable key code and bindings find the item by")
    if_applicable = models.BooleanField(default=False)
    source_line = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["group", "order"]
        constraints = [
            models.UniqueConstraint(fields=["template", "key"], condition=~models.Q(key=""),
                                    name="item_key_unique_in_version"),
        ]

    def __str__(self):
        return self.text

    def save(self, *args, **kwargs):
        if self.template_id is None:
            self.template_id = Phase.objects.filter(groups=self.group_id).values_list(
                "template_id", flat=True).first()
        super().save(*args, **kwargs)


class ContactField(models.Model):
    template = models.ForeignKey(
        ChecklistTemplate, on_delete=models.CASCADE, related_name="contact_fields"
    )
    order = models.PositiveIntegerField()
    section = models.CharField(max_length=200, blank=True)
    label = models.CharField(max_length=200)
    placeholder = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["template", "order"]

    def __str__(self):
        return self.label


class Runbook(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.PROTECT, related_name="runbooks")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Bumped by every write so other people's pages can poll cheaply for "anything new?".
    revision = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class ItemState(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="item_states")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="states")
    checked = models.BooleanField(default=False)
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_at = models.DateTimeField(null=True, blank=True)
    not_applicable = models.BooleanField(default=False)
    na_reason = models.TextField(blank=True)
    # How a tick came about, one of three ways (rules.tick_source): earned by a job run or a
    # schema approval (earned_by names it, earned_run points at the run whose evidence proves
    # it), overridden by a lead with a reason (a job-bound item ticked without its job), or by
    # hand (an item no job can earn). Who started the job, or who ticked, is checked_by.
    earned_by = models.CharField(max_length=200, blank=True)
    earned_run = models.ForeignKey(
        "TaskRun", null=True, blank=True, on_delete=models.PROTECT, related_name="earned_states")
    overridden = models.BooleanField(default=False)
    override_reason = models.TextField(blank=True)
    # Optimistic version: every write increments it under a row lock.
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["item__group__phase__order", "item__group__order", "item__order"]
        constraints = [
            models.UniqueConstraint(fields=["runbook", "item"], name="itemstate_runbook_item")
        ]

    def __str__(self):
        return f"{self.runbook}: {self.item}"

    @property
    def complete(self):
        return self.checked or self.not_applicable


class ItemNote(models.Model):
    """A note on an item. Notes are appended, never overwritten, so two people writing at once
    both keep what they wrote."""

    state = models.ForeignKey(ItemState, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=20, blank=True)  # tick, untick, note, not-applicable
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]


class SignOff(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="sign_offs")
    phase = models.ForeignKey(Phase, on_delete=models.PROTECT, related_name="sign_offs")
    lead = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    withdrawn_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # At most one standing sign-off per phase of a runbook; withdrawn ones stay as history.
            models.UniqueConstraint(
                fields=["runbook", "phase"],
                condition=models.Q(withdrawn_at__isnull=True),
                name="signoff_one_standing_per_phase",
            )
        ]

    @property
    def standing(self):
        return self.withdrawn_at is None


class GoLiveRequest(models.Model):
    OPEN, WITHDRAWN = "open", "withdrawn"
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="go_live_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    comment = models.TextField(blank=True)
    state = models.CharField(max_length=10, default=OPEN)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["runbook"], condition=models.Q(state="open"), name="golive_one_open_request"
            )
        ]


class GoLiveApproval(models.Model):
    request = models.ForeignKey(GoLiveRequest, on_delete=models.CASCADE, related_name="approvals")
    lead = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["request", "lead"], name="golive_one_approval_per_lead")
        ]


class ContactValue(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="contact_values")
    field = models.ForeignKey(ContactField, on_delete=models.PROTECT, related_name="+")
    value = models.CharField(max_length=300, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["runbook", "field"], name="contact_runbook_field")
        ]


class ApiToken(models.Model):
    """A bearer token for tools and auditors; only its sha256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    key_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({self.user})"


class JobBinding(models.Model):
    """Which job kind can earn which item of a template version: data, set on import of a known
    template or by a lead on the template's page. Runbooks copy them when they start
    (RunbookBinding), so a change applies to runbooks started after it."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="job_bindings")
    kind = models.CharField(max_length=50)
    # For kinds that judge items one by one against named parts (a success criterion, a rollback
    # trigger): which part earns this item. Blank: the whole job's outcome.
    part = models.CharField(max_length=50, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "kind"], name="jobbinding_item_kind")]

    def __str__(self):
        return f"{self.kind}{':' + self.part if self.part else ''} → {self.item}"


class RunbookBinding(models.Model):
    """A runbook's own copy of its template's bindings, taken when it starts: what earns its items
    does not change under the people working it when a lead rebinds the template."""

    runbook = models.ForeignKey("Runbook", on_delete=models.CASCADE, related_name="bindings")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="runbook_bindings")
    kind = models.CharField(max_length=50)
    part = models.CharField(max_length=50, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["runbook", "item", "kind"],
                                               name="runbookbinding_runbook_item_kind")]

    def __str__(self):
        return f"{self.runbook}: {self.kind}{':' + self.part if self.part else ''} → {self.item}"


class RunbookSource(models.Model):
    """One SQLite file the runbook migrates (name as the engine calls it, path on the worker)."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=100)
    path = models.CharField(max_length=1000)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["runbook", "name"], name="source_runbook_name")]


class RunbookTarget(models.Model):
    """The runbook's target PostgreSQL URL, encrypted at rest (Fernet, key from SECRET_KEY or
    TARGET_URL_KEY); only its redacted form is ever shown."""

    runbook = models.OneToOneField(Runbook, on_delete=models.CASCADE, related_name="target")
    url_encrypted = models.TextField()
    url_redacted = models.CharField(max_length=1000)
    updated_at = models.DateTimeField(default=timezone.now)


class CommandSpec(models.Model):
    """A command an admin allows members to run as a job (the team's own init_db.py ...)."""

    name = models.SlugField(max_length=50, unique=True)
    description = models.CharField(max_length=300, blank=True)
    argv = models.JSONField(help_text='The command as a list, e.g. ["python", "init_db.py"]')
    workdir = models.CharField(max_length=1000, blank=True)
    env = models.JSONField(default=dict, blank=True, help_text="Plain environment variables")
    secret_env = models.JSONField(
        default=list, blank=True,
        help_text="Names of variables taken from the worker's environment and never logged",
    )
    timeout_seconds = models.PositiveIntegerField(default=600)

    # The seed's three team scripts, shipped as commands (issue 14): they run in the MINGUS
    # checkout a lead points the runbook at (proof settings, repo_path). A row of the same name,
    # made in the admin, replaces the default.
    DEFAULTS = {
        "init-db": ("Create the app's tables, default data and admin user (init_db.py).",
                    ["python3", "init_db.py"], 900),
        "performance-test": ("The team's performance test against the target "
                             "(performance_test.py).", ["python3", "performance_test.py"], 1800),
        "e2e-tests": ("The team's end-to-end tests against the deployed app (e2e_tests.py).",
                      ["python3", "e2e_tests.py"], 1800),
    }

    def __str__(self):
        return self.name

    @classmethod
    def named(cls, name):
        """The configured command called `name`, else the shipped default (unsaved), else None."""
        found = cls.objects.filter(name=name).first()
        if found is None and name in cls.DEFAULTS:
            description, argv, timeout = cls.DEFAULTS[name]
            found = cls(name=name, description=description, argv=argv, timeout_seconds=timeout)
        return found


class TaskRun(models.Model):
    QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST = (
        "queued", "running", "succeeded", "failed", "cancelled", "lost")
    STATES = [(s, s) for s in (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST)]
    ACTIVE = (QUEUED, RUNNING)

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=50)
    items = models.ManyToManyField(Item, related_name="runs", blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    params = models.JSONField(default=dict, blank=True)  # secrets redacted before they get here
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    step = models.CharField(max_length=200, blank=True)
    percent = models.FloatField(null=True, blank=True)
    rows = models.BigIntegerField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)
    celery_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # No two active runs of the same job on the same runbook, enforced by the database.
            models.UniqueConstraint(
                fields=["runbook", "kind"],
                condition=models.Q(state__in=["queued", "running"]),
                name="taskrun_one_active_per_kind",
            )
        ]

    def __str__(self):
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def active(self):
        return self.state in self.ACTIVE

    @property
    def stale(self):
        """Running but silent past JOB_LOST_AFTER_SECONDS: shown as "stale (no heartbeat)".
        Read-only: the beat task `checklist.mark_lost_runs` (and a worker's start) marks it lost."""
        from datetime import timedelta

        from django.conf import settings

        return (self.state == self.RUNNING and self.heartbeat_at is not None
                and self.heartbeat_at < timezone.now() - timedelta(
                    seconds=settings.JOB_LOST_AFTER_SECONDS))

    def log_tail(self, lines=20):
        return "\n".join(self.log.splitlines()[-lines:])


class Evidence(models.Model):
    """An immutable record attached to a run: a report, an artifact file, or key figures."""

    run = models.ForeignKey(TaskRun, on_delete=models.PROTECT, related_name="evidence")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)  # report | artifact | log | figures
    path = models.CharField(max_length=500, blank=True)  # relative to MEDIA_ROOT
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    figures = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.name} ({self.sha256[:12]})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Evidence is immutable: record new evidence instead.")
        super().save(*args, **kwargs)


class SchemaApproval(models.Model):
    """A lead's approval of unified_schema.sql, bound to that file's sha256."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="schema_approvals")
    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="+")
    sha256 = models.CharField(max_length=64)
    lead = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)


class RunbookChange(models.Model):
    """What one revision of a runbook changed, written by the write that made the revision (in its
    transaction), so a live page is sent only that: the rows of `state_ids`, the headings of their
    phases and of `phase_ids`, the status block (checklist.live). A revision with no record (an
    admin edit) makes a reconnecting page reload its body instead."""

    ITEMS, PHASES, GO_LIVE, CONTACTS, RUN, SETTINGS = (
        "items", "phases", "go-live", "contacts", "run", "settings")

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="changes")
    revision = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=20)
    state_ids = models.JSONField(default=list, blank=True)
    # Phases whose state (locked, open, signed off) changed: all their rows change with them.
    phase_ids = models.JSONField(default=list, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["runbook", "revision"], name="change_runbook_revision")]
