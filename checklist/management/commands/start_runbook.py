from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from checklist import actions
from checklist.models import ChecklistTemplate


class Command(BaseCommand):
    help = "Start a runbook: one deployment working through one template version."

    def add_arguments(self, parser):
        parser.add_argument("--template", required=True, type=int, help="Template id")
        parser.add_argument("--name", required=True)
        parser.add_argument("--user", help="Lead or admin starting it (default: the first admin)")

    def handle(self, template, name, user=None, **options):
        try:
            tpl = ChecklistTemplate.objects.get(pk=template)
        except ChecklistTemplate.DoesNotExist:
            raise CommandError(f"No template with id {template}.", returncode=2)
        User = get_user_model()
        if user:
            actor = User.objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user '{user}'.", returncode=2)
        else:
            actor = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
            if actor is None:
                raise CommandError("No admin user exists; pass --user LEAD.", returncode=2)
        try:
            runbook = actions.start_runbook(actor, tpl, name)
        except actions.Refused as refused:
            # Unusable input (a name too long, say) is exit 2; a refusal by the rules is exit 1.
            raise CommandError(str(refused), returncode=2 if refused.status == 400 else 1)
        self.stdout.write(f"Started runbook {runbook.pk} '{runbook.name}' on {tpl}.")
