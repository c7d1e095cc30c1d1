"""Values as people read them on the pages: audit details, criteria figures, evidence figures,
guidance text and the causes of failed checks. Never a Python repr (True, None, {'a': 0.0}).

Plain functions; checklist/templatetags/checklist_tags.py makes them template filters.
"""
import re

import ftfy
from markdown_it import MarkdownIt
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

# CommonMark with tables; raw HTML in the text is shown as text, never passed through, and
# markdown-it refuses javascript:/data: links by itself.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text):
    """Guidance text as HTML: mojibake repaired (ftfy: 'ðŸ“‹' -> '📋'), Markdown rendered with
    raw HTML disabled. Safe to mark safe: markdown-it escapes everything it does not build."""
    return mark_safe(_MARKDOWN.render(ftfy.fix_text(text or "")))


def key_words(key):
    """'missing_rows' -> 'missing rows'."""
    return str(key).replace("_", " ")


def value(v):
    """One value in words: yes/no, '—' for nothing, numbers without a needless '.0', a mapping
    as 'key: value; ...', a list joined by commas."""
    if v is None or v == "":
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) < 1e15 else f"{v:.3e}"
    if isinstance(v, dict):
        return "; ".join(f"{key_words(k)}: {value(x)}" for k, x in v.items()) or "—"
    if isinstance(v, (list, tuple, set)):
        return ", ".join(value(x) for x in v) or "none"
    return str(v)


def pairs_html(mapping):
    """A mapping as `<span class="kv"><span class="k">key</span>: value</span>` pieces, escaped."""
    if not isinstance(mapping, dict):
        return ""
    return format_html_join(" ", '<span class="kv"><span class="k">{}</span>: {}</span>',
                            ((key_words(k), value(v)) for k, v in mapping.items()))


# Low-level messages (drivers, sockets, the checks' own inputs) and what they mean, in one
# sentence a person can act on. First match wins; \1, \2 are the matched groups.
_CAUSES = [
    (re.compile(r"server does not support SSL, but SSL was required", re.I),
     "the server offers no TLS (the connection requires it)"),
    (re.compile(r"SSL: WRONG_VERSION_NUMBER|wrong version number", re.I),
     "the server offers no TLS on that port"),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.I),
     "the server's TLS certificate is not trusted (expired, self-signed or for another name)"),
    (re.compile(r"password authentication failed", re.I),
     "the database refused the user name or password"),
    (re.compile(r"Connection refused", re.I), "nothing is listening at that address and port"),
    (re.compile(r"Name or service not known|nodename nor servname|getaddrinfo failed", re.I),
     "the host name does not resolve"),
    (re.compile(r"timed out|timeout expired", re.I), "the server did not answer in time"),
]
_REQUIRED = re.compile(r"^([\w:-]+): option '(\w+)' is required$")
_UNKNOWN = re.compile(r"^([\w:-]+): unknown option '(\w+)'$")


def cause(text):
    """A failure's cause in one sentence: a known low-level message in plain words, a check's
    missing input as what to set where, anything else as it is."""
    text = (text or "").strip()
    if not text:
        return ""
    m = _REQUIRED.match(text)
    if m:
        return (f"The {m[1]} check needs its '{m[2]}' setting: a lead sets it on this runbook's "
                "Check settings page.")
    m = _UNKNOWN.match(text)
    if m:
        return f"The {m[1]} check has no '{m[2]}' setting: remove it from the run's parameters."
    for pattern, words in _CAUSES:
        if pattern.search(text):
            head = text.split(":", 1)[0] if ":" in text[:40] else ""
            return f"{head}: {words}." if head else f"{words[0].upper()}{words[1:]}."
    return text
