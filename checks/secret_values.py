"""What counts as a secret, and how to describe one without ever showing it.

Shared by the env check (is SECRET_KEY set, and strong?) and the app-spec check (is a secret
committed in plain text?). A secret is described only by presence, length and strength.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

# Names that hold credentials. `_KEY$` catches SECRET_KEY, STRIPE_API_KEY, ENCRYPTION_KEY, but
# not MONKEY_BUSINESS; runbooks can replace the pattern through the env rules.
DEFAULT_SECRET_KEY_PATTERN = (
    r"(SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|_KEY$|^KEY$|_SALT$|DSN$)"
)

# Values shipped in templates and tutorials; compared case-insensitively, whole value.
DEFAULT_DEFAULT_VALUES = [
    "changeme", "change-me", "change_me", "secret", "secretkey", "secret-key", "secret_key",
    "dev", "development", "test", "testing", "default", "password", "passw0rd", "admin",
    "your-secret-key", "your_secret_key", "yoursecretkey", "your-secret-key-here", "mysecret",
    "supersecret", "super-secret", "insecure", "example", "placeholder", "todo", "xxx",
    "12345678", "123456", "none", "null", "replace-me", "replaceme",
]
# Fragments that mark a placeholder anywhere in a value ("django-insecure-...", "...-changeme").
DEFAULT_PLACEHOLDER_MARKERS = [
    "changeme", "change-me", "change_me", "your-secret", "your_secret", "replace-me",
    "replace_me", "django-insecure", "placeholder", "not-for-production", "example-key",
]

_ENCRYPTED = re.compile(r"^EV\[[^\]]+\]$")
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


def looks_secret(key: str, pattern: str = DEFAULT_SECRET_KEY_PATTERN) -> bool:
    """True when the variable's name says it holds a credential."""
    return bool(re.search(pattern, key or "", re.IGNORECASE))


def is_encrypted(value) -> bool:
    """True for App Platform's encrypted form of a SECRET (`EV[1:...:...]`)."""
    return isinstance(value, str) and bool(_ENCRYPTED.match(value.strip()))


def references(value) -> list[str]:
    """The bindable variables a value refers to: "${db.DATABASE_URL}" -> ["db.DATABASE_URL"]."""
    return _REFERENCE.findall(value) if isinstance(value, str) else []


def is_reference_only(value) -> bool:
    """True when the value is nothing but bindable references (resolved by App Platform)."""
    return isinstance(value, str) and bool(references(value)) and not _REFERENCE.sub("", value).strip()


def url_has_password(value) -> bool:
    """True when the value is a URL carrying a password (scheme://user:pw@host)."""
    if not isinstance(value, str) or "://" not in value:
        return False
    try:
        return bool(urlsplit(value.strip()).password)
    except ValueError:
        return False


def assess(value: str, min_length: int = 32, defaults=None, markers=None,
           min_distinct: int = 8) -> dict:
    """Presence, length and strength of a secret value; never the value itself.

    Returns {"present", "length", "strength": "strong"|"weak"|"missing", "weaknesses": [...]}.
    """
    if value is None or str(value).strip() == "":
        return {"present": False, "length": 0, "strength": "missing", "weaknesses": ["empty"]}
    text = str(value).strip()
    defaults = DEFAULT_DEFAULT_VALUES if defaults is None else defaults
    markers = DEFAULT_PLACEHOLDER_MARKERS if markers is None else markers
    weaknesses = []
    lowered = text.lower()
    if lowered in {d.lower() for d in defaults}:
        weaknesses.append("a well-known default value")
    elif any(m.lower() in lowered for m in markers):
        weaknesses.append("contains a placeholder marker")
    if len(text) < min_length:
        weaknesses.append(f"shorter than {min_length} characters")
    distinct = len(set(text))
    if distinct < min_distinct:
        weaknesses.append(f"only {distinct} distinct characters")
    return {
        "present": True,
        "length": len(text),
        "strength": "weak" if weaknesses else "strong",
        "weaknesses": weaknesses,
    }


def spec_env_findings(env: dict, pattern: str = DEFAULT_SECRET_KEY_PATTERN) -> list[tuple[str, str]]:
    """Plain-text secret findings for one app-spec env entry, as (field, message) pairs.

    A secret-looking key must be `type: SECRET` (unless it only binds ${...}); and no
    secret-looking key or password-bearing URL may carry a literal value: only EV[...] (App
    Platform's encrypted form) or bindable references are safe to commit.
    """
    key = str(env.get("key", ""))
    value = env.get("value")
    secret_name = looks_secret(key, pattern)
    carries_password = url_has_password(value)
    findings = []
    if not (secret_name or carries_password):
        return findings
    if secret_name and env.get("type") != "SECRET" and not is_reference_only(value):
        findings.append(("type", f"{key} looks like a secret but is not type: SECRET"))
    literal = value is not None and str(value).strip() != "" and not (
        is_encrypted(value) or is_reference_only(value))
    if literal:
        what = "a URL with a password" if carries_password else "a plain-text value"
        findings.append(("value", f"{key} holds {what} committed in the spec (length "
                                  f"{len(str(value))}); use type: SECRET with an EV[...] value "
                                  "or a bindable reference"))
    return findings
