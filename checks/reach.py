"""Reach: the checks talk only to the runbook's configured target and configured app URL.

The target PostgreSQL URL is the runbook's own (a run cannot pass another, see
checklist/params.py). The site checks start from the deployed URL a lead saved; every other
address they use must stay on that site: pages and the health path are paths on it (never an
absolute or scheme-relative URL that urljoin would send elsewhere), and the http:// URL whose
redirect is judged must name the same host. Checked when the settings are saved and again before
a check runs (settings saved before this rule existed are held to it too).
"""
from urllib.parse import urlsplit


def _is_path(path):
    return isinstance(path, str) and path.startswith("/") and not path.startswith("//") \
        and "\\" not in path and not any(c.isspace() for c in path)


def _split(url):
    """urlsplit, or None for what it cannot take (an unclosed '[', a port that is no number)."""
    try:
        parts = urlsplit(url or "")
        parts.port  # noqa: B018  (raises for a bad port)
        return parts
    except ValueError:
        return None


def problems(deployed_url, health_path="", http_paths=(), http_url=""):
    """What in these site settings would reach beyond the deployed app, as plain sentences."""
    found = []
    base = _split(deployed_url)
    if deployed_url and (base is None or base.scheme != "https" or not base.hostname):
        found.append("the deployed URL must be an https:// URL with a host (and a numeric port, "
                     "if any)")
        base = None
    if health_path and not _is_path(health_path):
        found.append("the health path must be a path on the deployed site, starting with one '/'")
    for path in http_paths or ():
        if not _is_path(path):
            found.append(f"page {str(path)[:80]!r} must be a path on the deployed site, "
                         "starting with one '/'")
    if http_url:
        plain = _split(http_url)
        if plain is None or plain.scheme != "http" or not plain.hostname:
            found.append("the http:// URL must be an http:// URL with a host (and a numeric port, "
                         "if any)")
        elif base is not None and base.hostname and plain.hostname != base.hostname:
            found.append(f"the http:// URL must name the deployed site's host ({base.hostname})")
    return found
