"""A runbook's target PostgreSQL URL, kept encrypted; only its redacted form is ever shown.

The key is TARGET_URL_KEY when set (a Fernet key, so it can be rotated apart from SECRET_KEY),
otherwise one derived from SECRET_KEY.
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from checks.redact import redact_url


def _fernet():
    key = settings.TARGET_URL_KEY
    if not key:
        key = base64.urlsafe_b64encode(hashlib.sha256(
            b"mingus-deploy target url:" + settings.SECRET_KEY.encode()).digest())
    return Fernet(key)


def encrypt(url):
    return _fernet().encrypt(url.encode()).decode()


def decrypt(token):
    """The plain text of `encrypt`'s token; ValueError when the key changed since."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("A stored secret cannot be decrypted: SECRET_KEY or TARGET_URL_KEY "
                         "changed since it was saved.") from None


def target_url(runbook):
    """The plain URL, for the worker that connects to it; never log or render it."""
    try:
        return _fernet().decrypt(runbook.target.url_encrypted.encode()).decode()
    except InvalidToken:
        raise ValueError("The target URL cannot be decrypted: SECRET_KEY or TARGET_URL_KEY "
                         "changed since it was saved. Set the target again.") from None


def describe(url):
    return redact_url(url)
