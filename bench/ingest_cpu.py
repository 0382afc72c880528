"""Bench: server-side CPU of one upload request, in process, for comparing two versions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench \\
        .venv/bin/python bench/ingest_cpu.py [--per-request 20] [--requests 30] [--rounds 2] \\
        [REPO ...]

Calls Django's WSGI handler of each REPO (a checkout; default: this one) directly with
pre-encoded multipart bodies of ``bench/ingest.py``'s CT files (production settings, audit on,
fsync'd writes), one child process per run, the repos alternating round by round, and prints
per request: the process's CPU (``os.times``, all threads: user and system), the PostgreSQL
backend's CPU (``/proc``) and the wall time. No HTTP server, no client in the measurement: on a
shared machine this is steadier than ``bench/ingest.py``'s rates. ``STAGES=1``-style
breakdowns: run a child with ``--profile FILE`` (cProfile of the timed requests).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def child(args) -> None:
    repo = Path(args.child).resolve()
    sys.path[:0] = [str(repo), str(repo / "bench")]
    os.chdir(repo)
    os.environ.update(
        {
            "MIS_MODE": "production",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1",
            "MEDIA_ROOT": args.media,
            "API_THROTTLE_USER": "1000000/min",
            "API_THROTTLE_TOKEN": "1000000/min",
            "DJANGO_SETTINGS_MODULE": "mis.settings",
        }
    )
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        from ingest import ct_file, multipart, prepare_django

        token, _config = prepare_django()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    handler = WSGIHandler()
    seed = int.from_bytes(os.urandom(3), "big") * 1000

    def call(body: bytes, content_type: str) -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/instances/",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Token {token}",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        status: list[str] = []
        response = handler(environ, lambda s, h, *a: status.append(s))
        content = b"".join(response)
        response.close()
        if not status[0].startswith("200") or b'"rejected":0' not in content.replace(b" ", b""):
            raise SystemExit(f"upload failed: {status} {content[:300]!r}")

    def backend_cpu() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    per, count = args.per_request, args.requests
    for i in range(5):  # warm-up: imports, connections, caches
        call(*multipart([ct_file(seed + 900_000 + i * per + j) for j in range(per)]))
    bodies = [multipart([ct_file(seed + r * per + j) for j in range(per)]) for r in range(count)]
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    pg_before, before, wall = backend_cpu(), os.times(), time.perf_counter()
    for body in bodies:
        call(*body)
    wall, after, pg_after = time.perf_counter() - wall, os.times(), backend_cpu()
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    user, system = after.user - before.user, after.system - before.system
    print(
        json.dumps(
            {
                "repo": str(repo),
                "per_request": per,
                "cpu_ms": round((user + system) / count * 1000, 1),
                "user_ms": round(user / count * 1000, 1),
                "sys_ms": round(system / count * 1000, 1),
                "postgres_ms": round((pg_after - pg_before) / count * 1000, 1),
                "wall_ms": round(wall / count * 1000, 1),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repos", nargs="*", default=[str(HERE)])
    parser.add_argument("--per-request", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--media", default="/tmp/mis-bench-ingest-cpu")
    parser.add_argument("--profile", default="")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    for round_ in range(args.rounds):
        for repo in args.repos if round_ % 2 == 0 else args.repos[::-1]:
            command = [sys.executable, __file__, "--child", repo, "--media", args.media]
            command += ["--per-request", str(args.per_request), "--requests", str(args.requests)]
            if args.profile:
                command += ["--profile", args.profile]
            load = os.getloadavg()[0]
            output = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
            print(lines[-1] if lines else output.stderr[-2000:], f"load {load:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
