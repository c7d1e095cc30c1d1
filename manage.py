#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mingus_deploy.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A missing or wrong setting is the operator's to fix: say which, without a traceback
        # (the settings never put a secret's value in these messages).
        print(f"manage.py: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
