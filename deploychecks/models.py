"""What the deployment checks keep: worker heartbeats, per-runbook check settings, baselines,
monitoring samples, rollback-trigger firings and notifications."""
import logging

from django.db import models
from django.utils import timezone

from checklist import secrets_at_rest
from checklist.secrets_at_rest import WEBHOOK
from checks.redact import redact_webhook

log = logging.getLogger(__name__)


def _decrypt_or_blank(token, what):
    if not token:
        return ""
    try:
        return secrets_at_rest.decrypt(token, WEBHOOK)
    except ValueError:
        log.warning("%s cannot be decrypted: SECRET_KEY or TARGET_URL_KEY changed", what)
        return ""


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by beat; /healthz reads it."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.hostname} @ {self.seen_at:%H:%M:%S}"


class RunbookCheckSettings(models.Model):
    """A runbook's thresholds and check inputs, with the seed's values until a lead saves them.

    The webhook URL often carries its token in the path, so it is kept like the target URL:
    encrypted, with a redacted form for display.
    """

    runbook = models.OneToOneField("checklist.Runbook", on_delete=models.CASCADE,
                                   related_name="check_settings")
    # Success criteria and rollback triggers (the seed's numbers).
    page_load_ms = models.FloatField(default=2000, help_text="page load p95 must be below")
    api_ms = models.FloatField(default=500, help_text="API p95 must be below")
    db_query_ms = models.FloatField(default=100, help_text="slowest query p95 must be below")
    pool_utilization_pct = models.FloatField(default=80, help_text="must be below")
    app_uptime_pct = models.FloatField(default=99.9, help_text="must be above")
    db_uptime_pct = models.FloatField(default=99.95, help_text="must be above")
    uptime_window_hours = models.FloatField(default=24)
    degradation_pct = models.FloatField(default=50, help_text="rollback trigger: slowdown vs "
                                                               "the baseline")
    error_rate_pct = models.FloatField(default=5, help_text="rollback trigger: http error rate")
    # Check inputs (paths on the worker).
    env_path = models.CharField(max_length=1000, blank=True,
                                help_text="env file or app spec the env check reads")
    env_rules = models.JSONField(default=dict, blank=True,
                                 help_text="env check rule overrides (the check's rules format)")
    app_spec_path = models.CharField(max_length=1000, blank=True)
    target_ca_file = models.CharField(max_length=1000, blank=True,
                                      help_text="CA of the target PostgreSQL (verify-full)")
    deployed_url = models.CharField(max_length=500, blank=True, help_text="https:// base URL")
    health_path = models.CharField(max_length=200, default="/healthz")
    ca_file = models.CharField(max_length=1000, blank=True,
                               help_text="CA file for the deployed site's certificate")
    http_paths = models.JSONField(default=list, blank=True,
                                  help_text='pages and API paths to load, e.g. ["/", "/api/x"]')
    http_url = models.CharField(max_length=500, blank=True,
                                help_text="http:// URL that must redirect to the https one "
                                          "(default: the deployed URL with http://)")
    performance_queries = models.JSONField(
        default=list, blank=True,
        help_text='extra read-only SQL queries the performance check times, one statement each, '
                  'e.g. ["SELECT * FROM orders WHERE user_id = 7"]')
    # Monitoring and notifications.
    monitor_interval_seconds = models.PositiveIntegerField(default=0, help_text="0 = off")
    last_monitored_at = models.DateTimeField(null=True, blank=True)
    notify_emails = models.TextField(blank=True, help_text="one address per line or comma")
    webhook_url_encrypted = models.TextField(blank=True)
    webhook_url_redacted = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    # What a lead edits on the settings page (and the audit snapshot holds).
    FIELDS = [
        "page_load_ms", "api_ms", "db_query_ms", "pool_utilization_pct", "app_uptime_pct",
        "db_uptime_pct", "uptime_window_hours", "degradation_pct", "error_rate_pct", "env_path",
        "env_rules", "app_spec_path", "target_ca_file", "deployed_url", "health_path", "ca_file",
        "http_paths", "http_url", "performance_queries", "monitor_interval_seconds",
        "notify_emails",
    ]

    class Meta:
        verbose_name = "runbook check settings"
        verbose_name_plural = "runbook check settings"

    def __str__(self):
        return f"check settings of runbook #{self.runbook_id}"

    @classmethod
    def for_runbook(cls, runbook):
        """The saved settings, or an unsaved instance with the defaults: a read creates no row
        (only actions.save_check_settings writes them)."""
        return cls.objects.filter(runbook=runbook).first() or cls(runbook=runbook)

    def snapshot(self):
        """The settings as the audit log keeps them: the webhook only in its redacted form."""
        data = {f: getattr(self, f) for f in self.FIELDS}
        data["webhook_url"] = self.webhook_url_redacted
        return data

    def emails(self):
        raw = self.notify_emails.replace(",", "\n").split()
        return [a.strip() for a in raw if "@" in a]

    def set_webhook_url(self, url):
        url = (url or "").strip()
        self.webhook_url_encrypted = secrets_at_rest.encrypt(url, WEBHOOK) if url else ""
        self.webhook_url_redacted = redact_webhook(url) if url else ""

    def webhook_url(self):
        """The plain URL, for the sender only; never log or render it ('' when it cannot be
        decrypted any more: SECRET_KEY or TARGET_URL_KEY changed)."""
        return _decrypt_or_blank(self.webhook_url_encrypted, "webhook URL")


class PerformanceBaseline(models.Model):
    """The first passing check-performance run of a runbook; later runs are compared to it."""

    runbook = models.OneToOneField("checklist.Runbook", on_delete=models.CASCADE,
                                   related_name="performance_baseline")
    run = models.ForeignKey("checklist.TaskRun", on_delete=models.PROTECT, related_name="+")
    evidence = models.ForeignKey("checklist.Evidence", null=True, blank=True,
                                 on_delete=models.PROTECT, related_name="+")
    report = models.JSONField()
    recorded_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"baseline of runbook #{self.runbook_id}: run #{self.run_id}"


class MonitorSample(models.Model):
    HEALTH, DATABASE, POOL = "health", "database", "pool"
    KINDS = [(k, k) for k in (HEALTH, DATABASE, POOL)]

    runbook = models.ForeignKey("checklist.Runbook", on_delete=models.CASCADE,
                                related_name="monitor_samples")
    kind = models.CharField(max_length=10, choices=KINDS)
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-taken_at", "-pk"]
        indexes = [models.Index(fields=["runbook", "kind", "taken_at"], name="sample_rb_kind_at")]


class TriggerFiring(models.Model):
    """A rollback trigger that fired; open until the evidence stops showing it."""

    runbook = models.ForeignKey("checklist.Runbook", on_delete=models.CASCADE,
                                related_name="trigger_firings")
    trigger = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=500)
    figures = models.JSONField(default=dict)
    evidence = models.JSONField(default=dict)  # {run_id, kind, name, sha256}
    fired_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-pk"]
        constraints = [models.UniqueConstraint(
            fields=["runbook", "trigger"], condition=models.Q(cleared_at__isnull=True),
            name="trigger_one_open_per_runbook")]

    def __str__(self):
        return f"{self.trigger} on runbook #{self.runbook_id}"


class Notification(models.Model):
    """One message to one channel, with every delivery attempt."""

    EMAIL, WEBHOOK = "email", "webhook"
    PENDING, SENT, FAILED = "pending", "sent", "failed"

    runbook = models.ForeignKey("checklist.Runbook", null=True, blank=True,
                                on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=50)
    channel = models.CharField(max_length=10)
    recipients = models.TextField(blank=True)  # addresses, or the redacted webhook URL
    subject = models.CharField(max_length=300)
    payload = models.JSONField(default=dict)  # what is sent; never a secret
    state = models.CharField(max_length=10, default=PENDING)
    attempts = models.JSONField(default=list)  # [{n, at, ok, status, error, ms}]
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.channel} {self.event} ({self.state})"


class RunbookProofSettings(models.Model):
    """What the proof jobs (issue 14) read, saved by a lead through an audited action: the
    DigitalOcean app and database cluster, the MINGUS repository on the worker, the app's tables
    and data, the test report and its mapping to items, the maintenance window.

    A run's parameters never override these: SQL, paths, URLs and ids come only from here. The DO
    token is kept like the webhook URL: encrypted, shown redacted, never logged or exported.
    """

    runbook = models.OneToOneField("checklist.Runbook", on_delete=models.CASCADE,
                                   related_name="proof_settings")
    # DigitalOcean (pydo).
    # Not editable: model_to_dict (the admin's audited snapshot) never carries the token.
    do_token_encrypted = models.TextField(blank=True, editable=False)
    do_token_redacted = models.CharField(max_length=50, blank=True)
    do_api_endpoint = models.CharField(max_length=300, default="https://api.digitalocean.com",
                                       help_text="the DigitalOcean API base URL")
    do_app_id = models.CharField(max_length=100, blank=True, help_text="App Platform app id")
    do_database_id = models.CharField(max_length=100, blank=True,
                                      help_text="managed PostgreSQL cluster id")
    do_min_pg_version = models.PositiveIntegerField(default=15)
    do_deploy_timeout_seconds = models.PositiveIntegerField(default=1800)
    do_min_cert_days = models.PositiveIntegerField(default=14)
    # The MINGUS repository on the worker (a git checkout).
    repo_path = models.CharField(max_length=1000, blank=True,
                                 help_text="the MINGUS git checkout; commands run here")
    repo_commit = models.CharField(max_length=64, blank=True,
                                   help_text="the deployed commit (empty: the DO app's active "
                                             "deployment, else HEAD)")
    repo_scripts = models.JSONField(default=list, blank=True,
                                    help_text="files that must be committed, e.g. "
                                              '["production_migration.py"]')
    repo_config_files = models.JSONField(default=list, blank=True,
                                         help_text='e.g. ["config/production.py"]')
    docs_map = models.JSONField(default=dict, blank=True,
                                help_text='item text -> {"path": ..., "must_contain": [...]}')
    # The app's own database, read through the target URL in a read-only transaction.
    app_tables = models.JSONField(default=list, blank=True)
    app_seed_rows = models.JSONField(default=dict, blank=True,
                                     help_text='table -> fewest rows, e.g. {"subscription_plans": 3}')
    app_admin_sql = models.TextField(blank=True,
                                     help_text="a SELECT returning the number of admin users")
    app_db_user = models.CharField(max_length=100, blank=True,
                                   help_text="the role the deployed app connects as")
    # Tests of the deployed app: a JUnit XML report and which tests prove which item.
    junit_path = models.CharField(max_length=1000, blank=True)
    test_map = models.JSONField(default=dict, blank=True,
                                help_text="item text -> [test name or prefix, ...]")
    # The announcement.
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    announce_note = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    # What a lead edits on the proof settings page (and the audit snapshot holds); the token is
    # set apart (write-only) and only its redacted form is ever shown or audited.
    FIELDS = [
        "do_api_endpoint", "do_app_id", "do_database_id", "do_min_pg_version",
        "do_deploy_timeout_seconds", "do_min_cert_days", "repo_path", "repo_commit",
        "repo_scripts", "repo_config_files", "docs_map", "app_tables", "app_seed_rows",
        "app_admin_sql", "app_db_user", "junit_path", "test_map", "window_start", "window_end",
        "announce_note",
    ]

    def __str__(self):
        return f"proof settings of runbook #{self.runbook_id}"

    def snapshot(self):
        """The settings as the audit log keeps them: the token only in its redacted form."""
        data = {f: getattr(self, f) for f in self.FIELDS}
        for key in ("window_start", "window_end"):
            data[key] = data[key].isoformat() if data[key] else None
        data["do_token"] = self.do_token_redacted
        return data

    @classmethod
    def of(cls, runbook):
        """The saved settings, or unsaved defaults: a read never writes."""
        found = cls.objects.filter(runbook=runbook).first()
        return found or cls(runbook=runbook)

    def set_do_token(self, token):
        token = (token or "").strip()
        self.do_token_encrypted = secrets_at_rest.encrypt(token, WEBHOOK) if token else ""
        self.do_token_redacted = (f"{token[:4]}…{token[-2:]}" if len(token) > 12 else "***") \
            if token else ""

    def do_token(self):
        """The plain token, for the pydo client only; never log or render it."""
        return _decrypt_or_blank(self.do_token_encrypted, "DigitalOcean token")
