import sys

from django.core.management.base import BaseCommand

from checklist.audit import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit hash chain; exit 0 when whole, 1 naming the first broken event."

    def handle(self, **options):
        ok, checked, broken_seq, reason = verify_chain()
        if ok:
            self.stdout.write(f"Audit chain verified: {checked} events, unbroken.")
            return
        self.stderr.write(f"Audit chain broken at event #{broken_seq}: {reason} "
                          f"({checked} events before it verified).")
        sys.exit(1)
