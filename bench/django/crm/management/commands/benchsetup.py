"""Django's own tables (auth, sessions, admin log) in the benchmark's database, and the two
users the benchmark signs in as: `admin` (superuser) and `sales01` (staff, may view and change
customers and contacts). Idempotent."""

from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--password", required=True)
        parser.add_argument("--sales", default="sales01")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        password = options["password"]
        admin, _ = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        admin.set_password(password)
        admin.save()
        sales, _ = User.objects.get_or_create(username=options["sales"], defaults={"is_staff": True})
        sales.set_password(password)
        sales.save()
        sales.user_permissions.set(Permission.objects.filter(
            content_type__app_label="crm", codename__regex=r"^(view|change)_(customer|contact)$"))
        self.stdout.write("ok")
