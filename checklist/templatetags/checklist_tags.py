import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

_CODE = re.compile(r"`([^`]+)`")


@register.filter
def inline_code(text):
    """Escape item text, then show back-ticked names (`init_db.py`) as code."""
    return mark_safe(_CODE.sub(r"<code>\1</code>", escape(text)))
