"""The per-department count of listed patients (``ListedPatientCount``), kept by PostgreSQL
statement triggers with transition tables: one aggregated upsert per statement that inserts,
updates or deletes patients, so a bulk insert of thousands of rows costs one statement more, not
thousands. SQLite has no such triggers; there the list counts its rows (the embedded mode holds
thousands of patients, not millions)."""

from django.db import connection
from django.db.models import QuerySet

STRIPES = 64
TABLE = "patients_listedpatientcount"
PATIENTS = "patients_patient"
LISTED = "department_id IS NOT NULL AND deleted_at IS NULL AND merged_into_id IS NULL"

# (trigger operation, transition tables it has, the rows it adds and takes away)
_OPERATIONS = {
    "insert": ("REFERENCING NEW TABLE AS new_rows", ["new_rows"], []),
    "update": (
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ["new_rows"],
        ["old_rows"],
    ),
    "delete": ("REFERENCING OLD TABLE AS old_rows", [], ["old_rows"]),
}


def _function_sql(operation: str) -> str:
    _referencing, added, removed = _OPERATIONS[operation]
    changes = [f"SELECT department_id, 1 AS delta FROM {t} WHERE {LISTED}" for t in added] + [
        f"SELECT department_id, -1 AS delta FROM {t} WHERE {LISTED}" for t in removed
    ]
    return f"""
CREATE OR REPLACE FUNCTION patients_listed_count_{operation}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (department_id, stripe, listed)
    SELECT department_id, mod(pg_backend_pid(), {STRIPES}), sum(delta)
    FROM ({" UNION ALL ".join(changes)}) AS change
    GROUP BY department_id
    HAVING sum(delta) <> 0
    ORDER BY department_id
    ON CONFLICT (department_id, stripe)
    DO UPDATE SET listed = {TABLE}.listed + EXCLUDED.listed;
    RETURN NULL;
END $$;
"""


def install_sql() -> list[str]:
    """The functions and triggers, and the counts of the rows already there."""
    statements = []
    for operation, (referencing, _added, _removed) in _OPERATIONS.items():
        statements.append(_function_sql(operation))
        statements.append(f"DROP TRIGGER IF EXISTS patients_listed_count_{operation} ON {PATIENTS}")
        statements.append(
            f"CREATE TRIGGER patients_listed_count_{operation} AFTER {operation.upper()} "
            f"ON {PATIENTS} {referencing} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION patients_listed_count_{operation}()"
        )
    statements += [
        f"""
CREATE OR REPLACE FUNCTION patients_listed_count_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE};
    RETURN NULL;
END $$;
""",
        f"DROP TRIGGER IF EXISTS patients_listed_count_truncate ON {PATIENTS}",
        f"CREATE TRIGGER patients_listed_count_truncate AFTER TRUNCATE ON {PATIENTS} "
        "FOR EACH STATEMENT EXECUTE FUNCTION patients_listed_count_truncate()",
    ]
    return statements + recount_sql()


def recount_sql() -> list[str]:
    """Counts made afresh from the patient table (installation; a repair, should one be
    needed). Takes a lock that waits for writers of patients, so no change falls between."""
    return [
        f"LOCK TABLE {PATIENTS} IN SHARE MODE",
        f"DELETE FROM {TABLE}",
        f"INSERT INTO {TABLE} (department_id, stripe, listed) SELECT department_id, 0, count(*) "
        f"FROM {PATIENTS} WHERE {LISTED} GROUP BY department_id",
    ]


def uninstall_sql() -> list[str]:
    statements = []
    for operation in (*_OPERATIONS, "truncate"):
        statements.append(f"DROP TRIGGER IF EXISTS patients_listed_count_{operation} ON {PATIENTS}")
        statements.append(f"DROP FUNCTION IF EXISTS patients_listed_count_{operation}()")
    return statements


def kept() -> bool:
    """Whether this database keeps the counts (PostgreSQL)."""
    return connection.vendor == "postgresql"


def listed_in(department_ids: list[int], *, plus: QuerySet | None = None) -> int:
    """Listed patients of these departments, from the kept counts (PostgreSQL only), plus the
    rows of ``plus`` (counted in the same statement)."""
    sql = f"SELECT coalesce(sum(listed), 0) FROM {TABLE} WHERE department_id = ANY(%s)"
    params = [list(department_ids)]
    if plus is not None:
        rest, rest_params = plus.order_by().values("pk").query.sql_with_params()
        sql = f"SELECT ({sql}) + (SELECT count(*) FROM ({rest}) AS rest)"
        params += list(rest_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


def differences() -> dict[int, tuple[int, int]]:
    """Departments whose kept count differs from a real count: ``{id: (kept, real)}``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT coalesce(k.department_id, r.department_id), coalesce(k.n, 0), coalesce(r.n, 0)
            FROM (SELECT department_id, sum(listed) AS n FROM {TABLE} GROUP BY department_id) k
            FULL JOIN (
                SELECT department_id, count(*) AS n FROM {PATIENTS} WHERE {LISTED}
                GROUP BY department_id
            ) r ON r.department_id = k.department_id
            WHERE coalesce(k.n, 0) <> coalesce(r.n, 0)
            """
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in cursor.fetchall()}


def recount() -> None:
    """Make the kept counts afresh (``recount_sql``), in one transaction."""
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for statement in recount_sql():
            cursor.execute(statement)
