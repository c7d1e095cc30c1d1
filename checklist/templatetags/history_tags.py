from django import template

register = template.Library()


@register.filter
def pairs(value):
    """A dict's (key, value) pairs; `d.items` in a template would read a key named 'items'."""
    return list(value.items()) if isinstance(value, dict) else []
