"""Settings, all read from the environment through django-environ.

Every variable has its embedded default written beside it, so a fresh clone runs with nothing
installed: SQLite under var/ for the app's own data and a filesystem Celery broker under var/.
The README's configuration table lists the same variables.
"""
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# An optional .env beside manage.py, for local overrides; the real environment wins.
env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("MINGUS_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (set DEBUG=true for local development)."
        )
    # Local development only: a key made once and kept under var/ so sessions survive restarts.
    _key_file = VAR_DIR / "dev_secret_key"
    if not _key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

# --- Audit: signed digests of the hash chain (checklist.digests, docs/audit.md) ------------------
# AUDIT_SIGNING_KEY: an Ed25519 private key, base64 of its 32 raw bytes (make one with
# `python manage.py audit_key generate`). Kept apart from the database: someone who can rewrite
# the audit table but lacks this key cannot forge the digests that vouch for it.
AUDIT_SIGNING_KEY = env("AUDIT_SIGNING_KEY", default="")
if not AUDIT_SIGNING_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "AUDIT_SIGNING_KEY must be set when DEBUG is off (make one with "
            "`python manage.py audit_key generate`, or set DEBUG=true for local development)."
        )
    # Local development only, like the secret key above.
    _audit_key_file = VAR_DIR / "dev_audit_signing_key"
    if not _audit_key_file.exists():
        from checklist.chain import new_private_key_text

        _audit_key_file.touch(mode=0o600)
        _audit_key_file.write_text(new_private_key_text())
    AUDIT_SIGNING_KEY = _audit_key_file.read_text().strip()
# Digest files live outside the database; ship copies off the host to also catch a rollback of
# this directory (docs/audit.md).
AUDIT_DIGEST_DIR = Path(env("AUDIT_DIGEST_DIR", default=str(VAR_DIR / "audit-digests")))
# A header a trusted proxy sets to the client's address (e.g. DO-Connecting-IP); empty: REMOTE_ADDR.
CLIENT_ADDR_HEADER = env("CLIENT_ADDR_HEADER", default="")
# Proxies in front of the app that append to X-Forwarded-For (App Platform: 1; local: 0, and
# then the header is ignored, since anyone can send it).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "checklist",
    "migration",
    "deploychecks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early, so every audit event of the request (logins included) carries its id and address.
    "checklist.middleware.RequestOriginMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "checklist.middleware.RefuseNulMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "checklist.middleware.SecurityHeadersMiddleware",
    # Last, so it sees the authenticated user (django-axes' own requirement).
    "axes.middleware.AxesMiddleware",
]

# The Content-Security-Policy (django-csp 4.x): no inline script or style anywhere, every script
# a file under /static/ (htmx and our small app.js), so injected markup cannot run code. The
# admin ships inline scripts of its own: it keeps Django's defaults.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "mingus_deploy.urls"
WSGI_APPLICATION = "mingus_deploy.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The app's own database. Default: a SQLite file under var/, in WAL mode with a busy timeout and
# IMMEDIATE transactions, so the web process and the worker can write at the same time.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mingus.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif env.bool("DATABASE_POOL", default=False):
    # The ASGI web server runs each request's database work in a thread of its own, so a
    # persistent connection would be left behind per thread: it borrows from psycopg's pool
    # instead (app-spec.yaml turns this on for the web service; Celery keeps CONN_MAX_AGE).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": env.int("DATABASE_POOL_MAX", default=4), "timeout": 10}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG  # serve straight from static/ in development and tests
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: evidence downloads go through a checked view

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "runbook-list"
LOGOUT_REDIRECT_URL = "login"

# --- Checklist rules ------------------------------------------------------------------------
# How many different leads must approve go-live (the requester's own approval never counts).
GO_LIVE_APPROVALS_REQUIRED = env.int("GO_LIVE_APPROVALS_REQUIRED", default=2)

# --- Login throttling (django-axes) ---------------------------------------------------------
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)  # hours
# Lock the (username, address) pair, never a username from every address nor an address for
# every user: behind one proxy everyone could share an address, and anyone could lock out anyone.
# Failures for unknown usernames lock only that (unknown name, address) pair.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "checklist.middleware.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_CALLABLE = "checklist.views.lockout"  # a plain page saying when to try again

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # else kombu writes ./control
        "store_processed": False,
    }
# Progress and outcomes live in the database (TaskRun), so no result backend is needed.
CELERY_RESULT_BACKEND = None
CELERY_IMPORTS = ("checklist.chunk_tasks",)  # not a tasks.py: autodiscovery would miss it
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # a lost run is marked lost, never silently re-run
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False  # never eager in the running app: jobs run in a worker process
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Security ---------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Behind App Platform's TLS-terminating router the scheme comes in this header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG

# --- Logging: events, never secrets -------------------------------------------------------------
# LOG_FORMAT=json (the default outside DEBUG) writes one JSON object per line.
LOG_FORMAT = env("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "mingus_deploy.logformat.PlainFormatter",
                  "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "mingus_deploy.logformat.JSONFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # httpx logs each request's full URL at INFO; a webhook URL is a secret.
    "loggers": {"axes": {"level": "WARNING"}, "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"}},
}

# --- Jobs -------------------------------------------------------------------------------------
# Engine work folders (backups, schema, rejects) live here, one per runbook; evidence copies go
# under MEDIA_ROOT.
JOB_WORKDIR = Path(env("JOB_WORKDIR", default=str(VAR_DIR / "work")))
# Files a job may read. Sources (SQLite files) must lie under SOURCE_ROOTS; files a check reads
# (env file, app spec) under CHECK_FILE_ROOTS (a root may be a single file: by default this
# repository's app-spec.yaml); symlinks are resolved first, and the app's own database and key
# file are never readable. `make run` copies the demo sources into VAR_DIR/sources.
SOURCE_ROOTS = [Path(p) for p in env.list("SOURCE_ROOTS", default=[str(VAR_DIR / "sources")])]
CHECK_FILE_ROOTS = [Path(p) for p in env.list(
    "CHECK_FILE_ROOTS", default=[str(p) for p in SOURCE_ROOTS] + [str(BASE_DIR / "app-spec.yaml")])]
CHECK_FILE_MAX_BYTES = env.int("CHECK_FILE_MAX_BYTES", default=1 << 20)  # env files, app specs
CHECKLIST_MAX_BYTES = env.int("CHECKLIST_MAX_BYTES", default=2 << 20)  # imported checklists
JOB_PROGRESS_INTERVAL = env.float("JOB_PROGRESS_INTERVAL", default=0.5)  # seconds between writes
# The migrate job's chunks on other Celery workers (docs/scaling.md): the queue those workers
# consume (empty: the job's own processes load them), how many chunks may be out at once (the
# chunk workers' total concurrency), and how long a sent chunk may go unclaimed before it is sent
# again (a worker died or its message was lost; a chunk is still loaded exactly once).
MIGRATION_CHUNK_QUEUE = env("MIGRATION_CHUNK_QUEUE", default="")
MIGRATION_CHUNK_SLOTS = env.int("MIGRATION_CHUNK_SLOTS", default=4)
MIGRATION_CHUNK_REDELIVER_SECONDS = env.float("MIGRATION_CHUNK_REDELIVER_SECONDS", default=30)
# Seconds between two reads of a DigitalOcean deployment the do-deploy and do-rollback jobs follow.
DO_POLL_SECONDS = env.float("DO_POLL_SECONDS", default=10.0)
JOB_HEARTBEAT_SECONDS = env.float("JOB_HEARTBEAT_SECONDS", default=5)
JOB_LOST_AFTER_SECONDS = env.float("JOB_LOST_AFTER_SECONDS", default=60)
# Live pages (checklist.live): the SQLite watcher's interval, the stream's heartbeat, and how
# long a cut stream waits before EventSource reconnects.
LIVE_POLL_SECONDS = env.float("LIVE_POLL_SECONDS", default=0.5)
LIVE_HEARTBEAT_SECONDS = env.float("LIVE_HEARTBEAT_SECONDS", default=15)
LIVE_RETRY_MS = env.int("LIVE_RETRY_MS", default=1000)
TARGET_URL_KEY = env("TARGET_URL_KEY", default="")  # Fernet key; default derived from SECRET_KEY
# Where the command job may run commands (admins configure them; members only run them).
COMMAND_JOB_ENV_PASSTHROUGH = env.list("COMMAND_JOB_ENV_PASSTHROUGH", default=["PATH", "HOME", "LANG"])
CELERY_BEAT_SCHEDULE = {
    # Runs whose worker died become `lost` even when nobody is looking at the runbook.
    "mark-lost-runs": {"task": "checklist.mark_lost_runs", "schedule": 30.0},
    # A signed digest of the audit chain every hour, when anything was recorded since the last.
    "audit-digest": {"task": "checklist.write_audit_digest", "schedule": 3600.0},
    "verify-evidence": {"task": "checklist.verify_evidence", "schedule": 600.0},
    "worker-heartbeat": {"task": "deploychecks.worker_heartbeat", "schedule": 30.0},
    # Samples the runbooks whose monitoring is due (each has its own interval), then evaluates
    # their rollback triggers.
    "deploychecks-monitor": {"task": "deploychecks.monitor_due", "schedule": 15.0},
    "deploychecks-digest": {"task": "deploychecks.digest", "schedule": crontab(hour=7, minute=0)},
}

# --- Notifications ------------------------------------------------------------------------------
# EMAIL_URL like smtp://user:password@smtp.example.com:587/?tls=True; the console by default.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="mingus-deploy@localhost")
DEPLOYCHECKS_NOTIFY_ATTEMPTS = env.int("DEPLOYCHECKS_NOTIFY_ATTEMPTS", default=4)
DEPLOYCHECKS_WEBHOOK_TIMEOUT = env.float("DEPLOYCHECKS_WEBHOOK_TIMEOUT", default=5)
DEPLOYCHECKS_NOTIFY_INLINE = env.bool("DEPLOYCHECKS_NOTIFY_INLINE", default=False)
