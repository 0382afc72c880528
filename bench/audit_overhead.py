"""Bench: what auditing costs the patient detail page and API on PostgreSQL.

It prepares a throw-away database (1,000,000 audit rows by default, from ``seed_bench``), then
starts two gunicorn servers against it side by side, one with reads audited
(``AUDIT_READS=true``, the only setting production allows) and one without
(``AUDIT_READS=false``), and times both over HTTP in alternating short rounds, so that load
from elsewhere on the machine falls on both alike::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench_audit \\
        .venv/bin/python bench/audit_overhead.py --audit-events 1000000

* ``page``: ``GET /patients/<id>/`` with a session cookie (viewing-window check + one insert;
  the page's "who accessed this record" list is read in both modes);
* ``api``: ``GET /api/v1/patients/<id>/`` with a token.

Each request opens a patient of the bench department that its user has not opened before (a
fresh viewing window, so the audit really writes); each case has its own user. Figures: p50/p95
of ``--requests`` sequential requests (1 client; the two servers take turns request by request)
and the throughput of ``--clients`` (8) threads over ``--seconds`` (the modes alternating in
``--rounds``). Target: audit on within 10 % of audit off for both. Last line: one
JSON object.
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "bench"))

from patients_search import ensure_database, postgres_settings  # noqa: E402

TARGET_RATIO = 1.10


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument(
        "--requests", type=int, default=600, help="sequential requests, 1 client, per case"
    )
    parser.add_argument(
        "--seconds", type=float, default=40.0, help="8-client time per case, over all rounds"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="gunicorn threads per worker (production runs 4: Dockerfile, docker-compose.yml)",
    )
    parser.add_argument("--rounds", type=int, default=8, help="alternations of off and on")
    return parser.parse_args()


def setup_django():
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
    import django

    django.setup()


def prepare(args) -> list[int]:
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import AuditEvent
    from patients.models import Patient

    call_command("migrate", interactive=False, verbosity=0)
    have = Patient.objects.filter(mrn__startswith="B").count()
    if have < args.patients:
        call_command("seed_bench", "--patients", str(args.patients - have))
    events = AuditEvent.objects.count()
    if events < args.audit_events:
        call_command("seed_bench", "--audit-events", str(args.audit_events - events))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) accounts_auditevent")
        cursor.execute("ANALYZE")
    print(f"patients: {Patient.objects.count()}, audit events: {AuditEvent.objects.count()}")
    return list(
        Patient.objects.filter(mrn__startswith="B", deleted_at__isnull=True).values_list(
            "pk", flat=True
        )
    )


def credentials(name: str) -> tuple[str, str]:
    """A Clinician of the bench department: a session cookie and an API token."""
    from django.contrib.auth.models import Group
    from django.test import Client

    from accounts.models import Department, User

    user, _ = User.objects.get_or_create(username=name)
    user.groups.set([Group.objects.get(name="Clinician")])
    user.departments.set([Department.objects.get(code="bench")])
    client = Client()
    client.force_login(user)
    from accounts.audit import Actor
    from accounts.tokens import token_create

    _token, key = token_create(actor=Actor.system("bench"), user=user, name="bench")
    return client.cookies["sessionid"].value, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, audit: bool, workers: int, threads: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "AUDIT_READS": "true" if audit else "false",
        "API_THROTTLE_USER": "1000000/min",
        "API_THROTTLE_TOKEN": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mis.wsgi",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("audit_overhead: gunicorn did not start")


def request(conn, path: str, headers: dict) -> float:
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return time.perf_counter() - started


def make_paths(kind: str, ids: list[int], seed: int):
    """An endless, thread-safe supply of detail URLs of patients not opened before by this
    run's user (a fresh viewing window each), then random ones."""
    url = "/patients/{}/" if kind == "page" else "/api/v1/patients/{}/"
    rng = random.Random(seed)
    order = iter(rng.sample(ids, len(ids)))
    lock = threading.Lock()

    def next_path():
        with lock:
            return url.format(next(order, None) or rng.choice(ids))

    return next_path


def headers_for(kind: str, cookie: str, token: str) -> dict:
    if kind == "page":
        return {"Cookie": f"sessionid={cookie}"}
    return {"Authorization": f"Token {token}"}


def sequential(port, next_path, headers, count) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = [request(conn, next_path(), headers) for _ in range(count)]
    conn.close()
    return times


def interleaved(ports: dict, setups: dict, kind: str, modes: tuple, count: int) -> None:
    """1 client: ``count`` requests to each server, taking turns request by request (the first
    of each pair alternating), so that a pause of the machine (a checkpoint, autovacuum after
    the 8-client phases' inserts, other work) falls on both modes alike."""
    conns = {
        mode: http.client.HTTPConnection("127.0.0.1", ports[mode], timeout=30) for mode in modes
    }
    for n in range(count):
        for mode in modes if n % 2 == 0 else tuple(reversed(modes)):
            setup = setups[(mode, kind)]
            setup["times"].append(request(conns[mode], setup["paths"](), setup["headers"]))
    for conn in conns.values():
        conn.close()


def concurrent(port, next_path, headers, clients, seconds) -> tuple[int, float]:
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop:
            request(c, next_path(), headers)
            done[n] += 1
        c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), time.perf_counter() - started


def commits_since(last_id: int) -> int:
    """How many transactions wrote the audit rows after ``last_id`` (the audit writer batches
    the events of a process's concurrent requests into one commit)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT txid) FROM accounts_auditevent WHERE id > %s", [last_id]
        )
        return cursor.fetchone()[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


def main():
    args = parse_args()
    config = postgres_settings()
    ensure_database(config)
    setup_django()
    ids = prepare(args)
    from accounts.models import AuditEvent

    # Both servers run side by side and the modes alternate in short rounds, so that load from
    # elsewhere on the machine falls on both alike instead of on whichever ran second.
    servers, setups = {}, {}
    try:
        for audit in (False, True):
            mode = "audit_on" if audit else "audit_off"
            port = free_port()
            servers[mode] = (port, start_server(port, audit, args.workers, args.threads))
            for n, kind in enumerate(("page", "api")):
                cookie, token = credentials(f"bench-{mode}-{kind}-{os.getpid()}")
                setups[(mode, kind)] = {
                    "headers": headers_for(kind, cookie, token),
                    "paths": make_paths(kind, ids, seed=n),
                    "times": [],
                    "done": 0,
                    "elapsed": 0.0,
                }
        for (mode, _kind), setup in setups.items():  # warm-up: imports, connections
            sequential(servers[mode][0], setup["paths"], setup["headers"], 30)
        before = AuditEvent.objects.count()
        last_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        per_round = max(1, args.requests // args.rounds)
        ports = {mode: port for mode, (port, _server) in servers.items()}
        for round_number in range(args.rounds):
            modes = ("audit_off", "audit_on")
            if round_number % 2:
                modes = tuple(reversed(modes))
            for kind in ("page", "api"):
                interleaved(ports, setups, kind, modes, per_round)
            for mode in modes:
                port = servers[mode][0]
                for kind in ("page", "api"):
                    setup = setups[(mode, kind)]
                    done, elapsed = concurrent(
                        port,
                        setup["paths"],
                        setup["headers"],
                        args.clients,
                        args.seconds / args.rounds,
                    )
                    setup["done"] += done
                    setup["elapsed"] += elapsed
                    setup.setdefault("rounds", []).append(round(done / elapsed, 1))
        written = AuditEvent.objects.count() - before
        commits = commits_since(last_id)
    finally:
        for _port, server in servers.values():
            server.terminate()
            server.wait(20)
    results = {}
    for (mode, kind), setup in setups.items():
        figures = {
            "p50_ms": round(statistics.median(setup["times"]) * 1000, 2),
            "p95_ms": round(percentile(setup["times"], 0.95) * 1000, 2),
            "rps_8": round(setup["done"] / setup["elapsed"], 1),
            "requests_1": len(setup["times"]),
            "rps_8_per_round": setup.get("rounds", []),
        }
        results.setdefault(kind, {})[mode] = figures
        print(f"{kind:5} {mode:9} {figures}")
    print(f"audit rows written while timing (audit on only): {written} in {commits} commits")
    summary = {
        "bench": "audit_overhead",
        "audit_events": AuditEvent.objects.count(),
        "workers": args.workers,
        "threads": args.threads,
        "events_written": written,
        "event_commits": commits,
    }
    met = {}
    for kind, modes in results.items():
        off, on = modes["audit_off"], modes["audit_on"]
        modes["p95_ratio"] = round(on["p95_ms"] / off["p95_ms"], 3)
        modes["throughput_ratio_pooled"] = round(off["rps_8"] / on["rps_8"], 3)
        # The two modes' 8-client phases of one round ran back to back: their ratio compares
        # the modes at one moment of the machine; the median over the rounds is not moved by
        # one round that another job slowed (or left alone) on one side only.
        paired = [a / b for a, b in zip(off["rps_8_per_round"], on["rps_8_per_round"], strict=True)]
        modes["throughput_ratio_per_round"] = [round(r, 3) for r in paired]
        modes["throughput_ratio"] = round(statistics.median(paired), 3)
        met[kind] = modes["p95_ratio"] <= TARGET_RATIO and modes["throughput_ratio"] <= TARGET_RATIO
        summary[kind] = modes
    summary["target"] = (
        "audit on within 10 % of off (p95 at 1 client; throughput at 8, the median of the "
        "rounds' paired ratios)"
    )
    summary["met"] = met
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
