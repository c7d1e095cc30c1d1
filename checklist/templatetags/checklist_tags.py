import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from checklist import readable

register = template.Library()

_CODE = re.compile(r"`([^`]+)`")


@register.filter
def inline_code(text):
    """Escape item text, then show back-ticked names (`init_db.py`) as code."""
    return mark_safe(_CODE.sub(r"<code>\1</code>", escape(text)))


@register.filter
def markdown(text):
    """Guidance: Markdown rendered (raw HTML off), its mojibake repaired (readable.markdown_html)."""
    return readable.markdown_html(text)


@register.filter
def readable_value(v):
    """True -> yes, None -> —, {'missing_rows': 0.0} -> 'missing rows: 0' (readable.value)."""
    return readable.value(v)


@register.filter
def readable_pairs(mapping):
    """A mapping as key: value pieces people read (audit details, evidence figures)."""
    return readable.pairs_html(mapping)


@register.filter
def cause(text):
    """A failure's cause in one sentence (readable.cause)."""
    return readable.cause(text)
