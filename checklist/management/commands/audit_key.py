"""Make an audit signing key, or print the public half auditors verify digests and packs with."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from checklist import chain


class Command(BaseCommand):
    help = ("`generate`: print a new AUDIT_SIGNING_KEY (keep it secret, set it in the environment). "
            "`public`: print the configured key's public half (PEM) for auditors.")
    # Neither reads the database: a key can be made before the app is configured.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("what", choices=["generate", "public"])

    def handle(self, what, **options):
        if what == "generate":
            self.stdout.write(chain.new_private_key_text())
            return
        try:
            key = chain.load_private_key(settings.AUDIT_SIGNING_KEY)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(chain.public_key_pem(key).rstrip("\n"))
