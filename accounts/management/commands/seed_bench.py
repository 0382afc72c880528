import json
import time

from django.core.management.base import BaseCommand, CommandError

from accounts.registry import bench_seeders

OPTIONS = ("patients", "studies", "instances", "audit_events")


class Command(BaseCommand):
    help = "Bulk-load rows for the benchmarks in bench/ (bulk inserts, thousands per batch)."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=0)
        parser.add_argument("--studies", type=int, default=0)
        parser.add_argument("--instances", type=int, default=0)
        parser.add_argument("--audit-events", type=int, default=0, dest="audit_events")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **options):
        wanted = {name: options[name] for name in OPTIONS if options[name]}
        if not wanted:
            raise CommandError("Say how many rows to load, e.g. --patients 100000.")
        missing = [name for name in wanted if name not in bench_seeders]
        if missing:
            raise CommandError(
                "No seeder is registered for: "
                + ", ".join(missing)
                + " (their models arrive with a later issue)."
            )
        figures = {}
        for seeder in sorted(bench_seeders.values(), key=lambda s: s.order):
            if seeder.option not in wanted:
                continue
            started = time.monotonic()
            result = seeder.seed(count=wanted[seeder.option], seed=options["seed"])
            figures[seeder.option] = round(time.monotonic() - started, 2)
            self.stdout.write(f"{seeder.option}: {result} in {figures[seeder.option]} s")
        self.stdout.write(json.dumps({"seconds": figures}))
