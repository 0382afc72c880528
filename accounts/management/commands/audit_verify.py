from django.core.management.base import BaseCommand, CommandError

from accounts.sealing import UNSEALED_GRACE, seal_pending, verify


class Command(BaseCommand):
    help = (
        "Verify the audit's hash chain: report the first broken link and any event left "
        "unsealed for more than 5 minutes. Exits with an error when either is found."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--seal-first", action="store_true", help="Run the sealing task before verifying."
        )

    def handle(self, *args, seal_first=False, **options):
        if seal_first:
            self.stdout.write(f"sealed {seal_pending()} events")
        report = verify()
        self.stdout.write(f"checked {report.checked} links")
        problems = []
        if report.broken_seq is not None:
            problems.append(
                f"first broken link: seal #{report.broken_seq} (event {report.broken_event_id}): "
                f"{report.problem}"
            )
        if report.unsealed_old:
            minutes = int(UNSEALED_GRACE.total_seconds() // 60)
            problems.append(
                f"{report.unsealed_old} events unsealed for more than {minutes} minutes "
                f"(oldest id {report.oldest_unsealed_id}); is Celery beat running?"
            )
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write(self.style.SUCCESS("the audit chain is intact"))
