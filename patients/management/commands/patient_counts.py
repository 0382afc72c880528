from django.core.management.base import BaseCommand, CommandError

from patients import counting


class Command(BaseCommand):
    help = (
        "Check the per-department counts of listed patients that PostgreSQL's triggers keep "
        "for the patient list (patients/counting.py) against a real count; --repair makes "
        "them afresh. Exits 1 when a count is wrong and was not repaired."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="recount what is wrong")

    def handle(self, *args, repair: bool = False, **options):
        if not counting.kept():
            self.stdout.write("This database counts its rows on every list: nothing is kept.")
            return
        wrong = counting.differences()
        if not wrong:
            self.stdout.write("The kept patient counts are right.")
            return
        for department_id, (kept, real) in sorted(wrong.items()):
            self.stdout.write(f"department {department_id}: kept {kept}, real {real}")
        if not repair:
            raise CommandError(
                f"{len(wrong)} department count(s) wrong; run with --repair to recount."
            )
        counting.recount()
        left = counting.differences()
        if left:
            raise CommandError(f"{len(left)} department count(s) still wrong after the recount.")
        self.stdout.write(f"Recounted: {len(wrong)} department count(s) repaired.")
