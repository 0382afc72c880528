import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import markdown_table

START, END = "<!-- roles-table:start -->", "<!-- roles-table:end -->"


def readme_with_table(text: str) -> str:
    if START not in text or END not in text:
        raise CommandError(f"README.md has no {START} … {END} markers.")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _m: f"{START}\n{markdown_table()}\n{END}", text)


class Command(BaseCommand):
    help = "Print the role table from accounts/roles.py, or write it into README.md (--write)."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true")

    def handle(self, *args, write=False, **options):
        if not write:
            self.stdout.write(markdown_table())
            return
        readme = settings.BASE_DIR / "README.md"
        readme.write_text(readme_with_table(readme.read_text()))
        self.stdout.write("README.md updated")
