"""A runbook's target PostgreSQL URL: kept encrypted (checklist/secrets_at_rest.py); only its
redacted form is ever shown."""
from . import secrets_at_rest


def encrypt_url(url):
    return secrets_at_rest.encrypt(url, secrets_at_rest.TARGET)


def target_url(runbook):
    """The plain URL, for the worker that connects to it; never log or render it."""
    try:
        return secrets_at_rest.decrypt(runbook.target.url_encrypted, secrets_at_rest.TARGET)
    except ValueError:
        raise ValueError("The target URL cannot be decrypted: SECRET_KEY or TARGET_URL_KEY "
                         "changed since it was saved. Set the target again.") from None
