import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from checklist.rules import ROLES

DEMO_USERS = [("member", "member"), ("lead", "lead"), ("lead2", "lead"), ("auditor", "auditor"),
              ("admin", "admin")]


class Command(BaseCommand):
    help = "Create the role groups and demo users member, lead, lead2, auditor, admin (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off")
        parser.add_argument("--password", help="Password for every demo user (default: random)")

    def handle(self, force=False, password=None, **options):
        if not (settings.DEBUG or force):
            raise CommandError("seed_demo creates well-known users: it runs only with DEBUG on or "
                               "--force.", returncode=2)
        for role in ROLES:
            Group.objects.get_or_create(name=role)
        password = password or secrets.token_urlsafe(9)
        User = get_user_model()
        for username, role in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = user.is_superuser = role == "admin"
            user.save()
            user.groups.set([Group.objects.get(name=role)])
        self.stdout.write("Demo users (password for all: %s)" % password)
        for username, role in DEMO_USERS:
            self.stdout.write(f"  {username:8} {role}")
