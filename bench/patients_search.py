"""Bench: the patient list page's search on PostgreSQL (page 1: count + the first 25 rows).

Run it against a throw-away database; it creates the database, migrates, seeds what is missing
and times ``patients.selectors.patient_list`` the way the list page uses it::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench \\
        .venv/bin/python bench/patients_search.py --patients 100000 --repeat 200

Three kinds of search, each over ``--repeat`` varied queries, after a warm-up pass:

* ``name_fragment``: ``q=<3-6 lowercase Cyrillic letters>`` cut from seeded names (``иван``,
  ``петро``, sometimes with ``ё``), the page's search box;
* ``mrn``: ``q=<an existing bench MRN>``, exact;
* ``birth_date``: random dates, half as ``q=DD.MM.YYYY``, half as ``birth_date=YYYY-MM-DD``.

It prints a table, EXPLAIN ANALYZE of the slowest name-fragment query (count and page), and as
its last line one JSON object with p50/p95 per kind and whether the targets were met.
"""

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = 25  # patients.views.PAGE_SIZE
TARGETS = {"mrn_p95_ms": 50, "name_fragment_p95_ms": 150}
BENCH_USERNAME = "bench-registrar"
BENCH_DEPARTMENT = "bench"  # the department patients.seeding puts bench patients in


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000, help="bench patients wanted")
    parser.add_argument("--repeat", type=int, default=200, help="queries per kind of search")
    parser.add_argument("--seed", type=int, default=1, help="seed for the random queries")
    parser.add_argument(
        "--explain",
        metavar="FRAGMENT",
        help="EXPLAIN ANALYZE this name fragment instead of the slowest one timed",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args()
    if args.patients < 1 or args.repeat < 1:
        parser.error("--patients and --repeat must be positive")
    return args


# --- Database --------------------------------------------------------------------------------


def postgres_settings() -> dict:
    """The DATABASE_URL, parsed; exits with a clear message unless it names PostgreSQL."""
    import dj_database_url

    url = os.environ.get("DATABASE_URL", "").strip()
    hint = (
        "This bench measures the PostgreSQL deployment (trigram index, planner); set e.g.\n"
        "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench"
    )
    if not url:
        sys.exit("patients_search: DATABASE_URL is not set, which means SQLite.\n" + hint)
    try:
        config = dj_database_url.parse(url)
    except Exception as exc:  # an unknown scheme, a malformed URL
        sys.exit(f"patients_search: cannot read DATABASE_URL ({exc}).\n" + hint)
    if config.get("ENGINE") != "django.db.backends.postgresql":
        sys.exit(
            f"patients_search: refusing to run on {config.get('ENGINE')!r}: "
            "PostgreSQL only.\n" + hint
        )
    if not config.get("NAME"):
        sys.exit("patients_search: DATABASE_URL names no database.\n" + hint)
    return config


def ensure_database(config: dict) -> None:
    """Create the database named in DATABASE_URL when it does not exist yet."""
    import psycopg
    from psycopg import sql

    params = {
        "dbname": "postgres",
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    params = {k: v for k, v in params.items() if v is not None}
    try:
        with psycopg.connect(**params, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]
            ).fetchone()
            if exists:
                print(f"database {config['NAME']}: exists")
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
            print(f"database {config['NAME']}: created")
    except psycopg.OperationalError as exc:
        sys.exit(f"patients_search: cannot reach PostgreSQL: {exc}")


def setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":  # settings could still override DATABASES
        sys.exit(f"patients_search: refusing to run on {connection.vendor}: PostgreSQL only.")


def prepare(wanted: int) -> int:
    """Migrate, seed the missing bench patients, vacuum/analyze. Returns the bench count."""
    from django.core.management import call_command
    from django.db import connection

    from patients.models import Patient

    started = time.monotonic()
    call_command("migrate", interactive=False, verbosity=0)
    print(f"migrate: done in {time.monotonic() - started:.1f} s")

    have = Patient.objects.filter(mrn__startswith="B").count()
    if have < wanted:
        print(f"seed_bench: {have} bench patients, seeding {wanted - have} more")
        call_command("seed_bench", "--patients", str(wanted - have))
        have = Patient.objects.filter(mrn__startswith="B").count()
    else:
        print(f"seed_bench: {have} bench patients already (wanted {wanted}), not seeding")

    started = time.monotonic()
    with connection.cursor() as cursor:
        # VACUUM after a bulk load sets the visibility map (index-only scans for count) and
        # flushes the GIN pending list, as autovacuum would on a live server; then ANALYZE.
        cursor.execute("VACUUM (ANALYZE) patients_patient")
        cursor.execute("ANALYZE")
    print(f"vacuum/analyze: done in {time.monotonic() - started:.1f} s")
    return have


def check_indexes() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'patients_patient' "
            "ORDER BY indexname"
        )
        rows = cursor.fetchall()
    print("\nindexes on patients_patient:")
    for name, definition in rows:
        print(f"  {name}: {definition.split(' USING ', 1)[-1]}")
    names = [name for name, _ in rows]
    if "patient_search_name_trgm" not in names:
        print("  WARNING: the trigram index patient_search_name_trgm is missing")
    return names


def bench_user():
    """A Registrar (the role that searches all day), member of the bench department."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from accounts.models import Department
    from accounts.roles import REGISTRAR

    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=BENCH_USERNAME,
        defaults={"last_name": "Bench", "first_name": "Registrar", "is_active": True},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=REGISTRAR))
    department = Department.objects.filter(code=BENCH_DEPARTMENT).first()
    if department is not None:
        user.departments.add(department)
    user = User.objects.get(pk=user.pk)  # no stale permission cache
    if not user.has_perm("patients.view_patient"):
        sys.exit("patients_search: the Registrar user cannot view patients; roles not synced?")
    print(f"user: {user.username} ({'created' if created else 'reused'}), group {REGISTRAR}")
    return user


# --- Queries ---------------------------------------------------------------------------------


def sample_patients(rng: random.Random, bench_count: int, k: int) -> list:
    """k bench patients picked by random MRN (cheap, unlike ORDER BY random())."""
    from patients.models import Patient

    mrns = [f"B{rng.randrange(bench_count):08d}" for _ in range(k)]
    by_mrn = Patient.objects.in_bulk(mrns, field_name="mrn")
    return [by_mrn[m] for m in mrns if m in by_mrn]


def cut_fragment(rng: random.Random, word: str, must_include: int | None = None) -> str:
    """3-6 letters of a name, usually its beginning (what people type), lowercase."""
    word = word.lower()
    length = min(rng.randint(3, 6), len(word))
    if must_include is not None:
        low = max(0, must_include - length + 1)
        high = min(must_include, len(word) - length)
        start = rng.randint(low, high)
    elif rng.random() < 0.6:
        start = 0
    else:
        start = rng.randint(0, len(word) - length)
    return word[start : start + length]


def name_fragments(rng: random.Random, bench_count: int, n: int) -> list[str]:
    from django.db.models import Q

    from patients.models import Patient

    n_yo = n // 8  # some with ё: Фёдоров, Семёнов, Пётр, Артём, Алёна ...
    fragments = []
    for patient in sample_patients(rng, bench_count, n - n_yo):
        word = rng.choice([patient.last_name, patient.first_name, patient.middle_name])
        fragments.append(cut_fragment(rng, word))
    yo = Q(last_name__contains="ё") | Q(first_name__contains="ё")
    pks = list(
        Patient.objects.filter(yo, mrn__startswith="B").order_by("pk").values_list("pk", flat=True)
    )
    for pk in [rng.choice(pks) for _ in range(n_yo)] if pks else []:
        patient = Patient.objects.get(pk=pk)
        word = next(w for w in (patient.last_name, patient.first_name) if "ё" in w)
        fragments.append(cut_fragment(rng, word, must_include=word.index("ё")))
    while len(fragments) < n:  # a sparse table: fill from what was found
        fragments.append(rng.choice(fragments or ["иван"]))
    rng.shuffle(fragments)
    return fragments


def mrns(rng: random.Random, bench_count: int, n: int) -> list[str]:
    return [f"B{rng.randrange(bench_count):08d}" for _ in range(n)]


def birth_dates(rng: random.Random, n: int) -> list[dict]:
    today = dt.date.today()
    queries = []
    for i in range(n):
        day = today - dt.timedelta(days=rng.randint(0, 95 * 365))
        if i % 2 == 0:
            queries.append({"q": day.strftime("%d.%m.%Y")})
        else:
            queries.append({"birth_date": day.isoformat()})
    return queries


def build_queries(rng: random.Random, bench_count: int, n: int) -> dict[str, list[dict]]:
    return {
        "name_fragment": [{"q": f} for f in name_fragments(rng, bench_count, n)],
        "mrn": [{"q": m} for m in mrns(rng, bench_count, n)],
        "birth_date": birth_dates(rng, n),
    }


# --- Timing ----------------------------------------------------------------------------------


def page_one(user, filters: dict) -> tuple[float, float, int, int]:
    """What the list page does for page 1: count() for the paginator, then 25 rows."""
    from patients.selectors import patient_list

    started = time.perf_counter()
    qs = patient_list(user=user, filters=filters)
    total = qs.count()
    counted = time.perf_counter()
    rows = list(qs[:PAGE_SIZE])
    done = time.perf_counter()
    return (counted - started) * 1000, (done - counted) * 1000, total, len(rows)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def run_kind(user, queries: list[dict]) -> dict:
    samples = []
    for filters in queries:
        count_ms, fetch_ms, total, rows = page_one(user, filters)
        samples.append(
            {
                "filters": filters,
                "ms": count_ms + fetch_ms,
                "count_ms": count_ms,
                "fetch_ms": fetch_ms,
                "matches": total,
                "rows": rows,
            }
        )
    return summarise(samples)


def summarise(samples: list[dict]) -> dict:
    ms = [s["ms"] for s in samples]
    slowest = max(samples, key=lambda s: s["ms"])
    return {
        "n": len(samples),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "count_p95_ms": round(percentile([s["count_ms"] for s in samples], 95), 2),
        "fetch_p95_ms": round(percentile([s["fetch_ms"] for s in samples], 95), 2),
        "matches_mean": round(statistics.fmean(s["matches"] for s in samples), 1),
        "matches_max": max(s["matches"] for s in samples),
        "empty": sum(1 for s in samples if s["matches"] == 0),
        "slowest": {"filters": slowest["filters"], "ms": round(slowest["ms"], 2)},
        "_samples": samples,
    }


def print_table(results: dict[str, dict]) -> None:
    header = (
        f"{'search':<22}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'count p95':>11}{'fetch p95':>11}{'matches avg/max':>18}"
    )
    print("\n" + header)
    print("-" * len(header))
    for kind, r in results.items():
        print(
            f"{kind:<22}{r['n']:>5}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['max_ms']:>9.1f}{r['count_p95_ms']:>11.1f}{r['fetch_p95_ms']:>11.1f}"
            f"{r['matches_mean']:>11.1f}/{r['matches_max']:<6}"
        )
    print()
    for kind, r in results.items():
        print(f"slowest {kind}: {r['slowest']['filters']} {r['slowest']['ms']:.1f} ms")


def explain(user, label: str, filters: dict) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the page runs for these filters."""
    from django.db import connection

    from patients.selectors import patient_list

    captured: list[tuple[str, tuple]] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    qs = patient_list(user=user, filters=filters)
    with connection.execute_wrapper(capture):
        qs.count()
        list(qs[:PAGE_SIZE])
    print(f"\nEXPLAIN ANALYZE, {label} {filters}:")
    for query, (sql, params) in zip(("count()", f"first {PAGE_SIZE} rows"), captured, strict=False):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
        uses = "uses" if any("patient_search_name_trgm" in line for line in plan) else "NOT using"
        print(f"\n-- {query}: {uses} the trigram index patient_search_name_trgm")
        for line in plan:
            print("   " + line)


def main() -> int:
    args = parse_args()
    config = postgres_settings()
    ensure_database(config)
    setup_django()
    bench_count = prepare(args.patients)
    check_indexes()
    user = bench_user()

    rng = random.Random(args.seed)
    warmup = build_queries(rng, bench_count, args.repeat)
    timed = build_queries(rng, bench_count, args.repeat)

    started = time.monotonic()
    for queries in warmup.values():
        for filters in queries:
            page_one(user, filters)
    warmed = sum(map(len, warmup.values()))
    print(f"warm-up: {warmed} queries in {time.monotonic() - started:.1f} s")

    results = {kind: run_kind(user, queries) for kind, queries in timed.items()}
    print_table(results)

    met = {
        "mrn": results["mrn"]["p95_ms"] <= TARGETS["mrn_p95_ms"],
        "name_fragment": results["name_fragment"]["p95_ms"] <= TARGETS["name_fragment_p95_ms"],
    }
    slowest_name = results["name_fragment"]["slowest"]["filters"]
    explain(user, "name fragment", {"q": args.explain} if args.explain else slowest_name)
    if not met["mrn"]:
        explain(user, "MRN (target missed)", results["mrn"]["slowest"]["filters"])
    summary = {
        "bench": "patients_search",
        "patients": bench_count,
        "repeat": args.repeat,
        "page_size": PAGE_SIZE,
    }
    for kind, r in results.items():
        summary[kind] = {k: v for k, v in r.items() if not k.startswith("_")}
    summary["targets"] = TARGETS
    summary["met"] = met
    print("\ntargets:", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    sys.stdout.flush()
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 1 if args.strict and not all(met.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
