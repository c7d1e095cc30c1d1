"""Secrets at rest: the one place values such as a runbook's target URL, a run's secret
parameters, a webhook URL or a DigitalOcean token are encrypted before they are stored.

Fernet (authenticated encryption). The key is TARGET_URL_KEY when set (a Fernet key, so it can
be rotated apart from SECRET_KEY), otherwise one derived from SECRET_KEY per purpose: a value
encrypted for one purpose does not decrypt as another.
"""
import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

# The purposes, as their key derivations have always named them (stored tokens depend on it).
TARGET = "target url"  # a runbook's target URL and the secret parameters of runs
WEBHOOK = "webhook url"  # the notification webhook URL and the DigitalOcean token


def _fernet(purpose):
    key = getattr(settings, "TARGET_URL_KEY", "")
    if not key:
        key = base64.urlsafe_b64encode(hashlib.sha256(
            f"mingus-deploy {purpose}:".encode() + settings.SECRET_KEY.encode()).digest())
    return Fernet(key)


def encrypt(text, purpose):
    """The token to store for `text`."""
    return _fernet(purpose).encrypt(text.encode()).decode()


def decrypt(token, purpose):
    """The plain text of `encrypt`'s token; ValueError when the key changed since."""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("A stored secret cannot be decrypted: SECRET_KEY or TARGET_URL_KEY "
                         "changed since it was saved.") from None
