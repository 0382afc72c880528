"""Bench: full-text search over report text on PostgreSQL (the report search page, page 1:
count + the first 25 rows with highlights), through ``studies.reporting`` as a Clinician.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench \\
        .venv/bin/python bench/report_search.py --reports 20000 --repeat 50

It creates the database when missing, migrates, seeds the missing bench reports (signed, in
Russian, one per study), runs ANALYZE, times ``--repeat`` searches per word form after a
warm-up, prints EXPLAIN ANALYZE of one search and, as its last line, one JSON object.
"""

import argparse
import json
import random
import statistics
import sys
import time

from patients_search import ensure_database, postgres_settings, setup_django

PAGE_SIZE = 25
TARGET_P95_MS = 200
DEPARTMENT = "bench-reports"
PHRASES = [
    "Очаговая пневмония нижней доли справа.",
    "Признаки двусторонней пневмонии.",
    "Пневмонии не выявлено.",
    "Перелом ребра слева без смещения.",
    "Плевральный выпот справа небольшой.",
    "Кардиомегалия. Застойные явления в малом круге.",
    "Лёгкие без очаговых и инфильтративных изменений.",
    "Right lower lobe pneumonia.",
    "Пневмоторакс слева, коллапс лёгкого на треть.",
    "Эмфизема. Фиброзные изменения в верхних долях.",
]
QUERIES = ["пневмония", "пневмонии", "перелом ребра", "выпот", "pneumonia", "кардиомегалия"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=50)
    return parser.parse_args()


def seed(wanted: int):
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from accounts.models import Department, User
    from patients.models import Patient
    from studies.models import Report, Study

    department, _ = Department.objects.get_or_create(code=DEPARTMENT, defaults={"name": "Bench"})
    author, _ = User.objects.get_or_create(username="bench-radiologist")
    reader, _ = User.objects.get_or_create(username="bench-clinician")
    author.groups.add(Group.objects.get(name="Radiologist"))
    reader.groups.add(Group.objects.get(name="Clinician"))
    reader.departments.add(department)
    have = Report.objects.filter(study__department=department).count()
    rng = random.Random(have)
    batch = 2000
    while have < wanted:
        n = min(batch, wanted - have)
        patients = Patient.objects.bulk_create(
            Patient(
                mrn=f"RB{have + i:08d}",
                last_name="Отчётов",
                first_name="Бенч",
                department=department,
            )
            for i in range(n)
        )
        now = timezone.now()
        studies = Study.objects.bulk_create(
            Study(
                study_uid=f"1.2.826.0.9.{have + i}",
                patient=p,
                department=department,
                category="chest_xray",
                study_datetime=now,
                reading_status="final",
            )
            for i, p in enumerate(patients)
        )
        Report.objects.bulk_create(
            Report(
                study=s,
                version=1,
                status="signed",
                signed_at=now,
                author=author,
                conclusion=" ".join(rng.sample(PHRASES, 3)),
            )
            for s in studies
        )
        have += n
        print(f"seeded {have} reports")
    return reader


def main():
    args = parse_args()
    ensure_database(postgres_settings())
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from studies.reporting.search import highlighted, report_search
    from studies.reporting.selectors import report_queryset

    call_command("migrate", interactive=False, verbosity=0)
    reader = seed(args.reports)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) studies_report")

    def run(text):
        qs = report_search(report_queryset(user=reader), text)
        count = qs.count()
        rows = [highlighted(r, text) for r in qs[:PAGE_SIZE]]
        return count, rows

    for text in QUERIES:
        run(text)  # warm-up
    figures = {}
    print(f"\n{'query':<16}{'matches':>9}{'p50 ms':>9}{'p95 ms':>9}")
    for text in QUERIES:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            count, _rows = run(text)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        figures[text] = {"matches": count, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
        print(f"{text:<16}{count:>9}{p50:>9.1f}{p95:>9.1f}")
    qs = report_search(report_queryset(user=reader), "пневмония")
    print("\nEXPLAIN ANALYZE (count, «пневмония»):")
    print(qs.explain(analyze=True))
    worst = max(f["p95_ms"] for f in figures.values())
    print(
        json.dumps(
            {
                "bench": "report_search",
                "reports": args.reports,
                "queries": figures,
                "target_p95_ms": TARGET_P95_MS,
                "met": worst <= TARGET_P95_MS,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
