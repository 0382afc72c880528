import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from accounts.roles import ADMINISTRATOR


class Command(BaseCommand):
    help = (
        "Create the first administrator with a random password (kept in var/ for the embedded "
        "mode) and print the login; does nothing to an existing administrator's password."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        password_file = settings.VAR_DIR / "admin-password.txt"
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, password=password, email="")
            user.groups.add(Group.objects.get(name=ADMINISTRATOR))
            if settings.EMBEDDED:
                settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
                password_file.write_text(password + "\n")
                password_file.chmod(0o600)
        elif password_file.exists() and user.check_password(password_file.read_text().strip()):
            password = password_file.read_text().strip()
        else:
            password = None
        self.stdout.write(self.style.SUCCESS("Administrator login:"))
        self.stdout.write(f"  user:     {username}")
        if password:
            self.stdout.write(f"  password: {password}")
        else:
            self.stdout.write("  password: (changed since it was created; not shown)")
