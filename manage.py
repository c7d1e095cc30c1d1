#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mingus_deploy.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError, ProgrammingError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A missing or wrong setting is the operator's to fix: say which, without a traceback
        # (the settings never put a secret's value in these messages).
        print(f"manage.py: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    except (OperationalError, ProgrammingError) as error:
        # The app's own database is unreachable or not set up: one line, passwords scrubbed.
        if "--traceback" in sys.argv:
            raise
        from migration.redact import scrub

        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        hint = ""
        if "no such table" in first or ("relation" in first and "does not exist" in first):
            hint = " (has 'manage.py migrate' been run on this database?)"
        print(f"manage.py: database error: {scrub(first, os.environ.get('DATABASE_URL', ''))}{hint}",
              file=sys.stderr)
        sys.exit(2)
