from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from checklist.api import new_token


class Command(BaseCommand):
    help = "Create an API bearer token for a user and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user '{username}'.", returncode=2)
        self.stdout.write(new_token(user, name))
