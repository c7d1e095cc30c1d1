"""Test settings: the real settings with test-friendly environment defaults.

The suite runs the app's database on PostgreSQL (DATABASE_URL, default the local server on
127.0.0.1:5432); set DATABASE_URL=sqlite:///... to run it on SQLite.
"""
import os
import tempfile
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# A fixed test key (never used outside tests); tests that need another set their own.
os.environ.setdefault("AUDIT_SIGNING_KEY", "dGVzdC1vbmx5LWF1ZGl0LWtleS0wMTIzNDU2Nzg5YWI=")
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/mingus")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
# Jobs in tests go through the real Redis to a real worker process (tests/worker.py).
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("JOB_PROGRESS_INTERVAL", "0.2")
os.environ.setdefault("JOB_HEARTBEAT_SECONDS", "1")
# The local DigitalOcean API advances a deployment one phase per read.
os.environ.setdefault("DO_POLL_SECONDS", "0.05")
# Tests keep their SQLite sources in pytest's tmp_path; tests of the roots narrow this.
os.environ.setdefault("SOURCE_ROOTS", tempfile.gettempdir())

from .settings import *  # noqa: E402,F401,F403
from .settings import BASE_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "test-media"))
JOB_WORKDIR = Path(os.environ.get("JOB_WORKDIR", BASE_DIR / "var" / "test-work"))
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
