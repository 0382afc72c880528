"""Smoke test of the production mode, with the commands and environment of docker-compose.yml.

Reads the ``migrate``, ``web``, ``worker`` and ``beat`` services from docker-compose.yml, points
them at the local PostgreSQL (database ``mis_smoke``) and Redis (database 15) instead of the
compose hosts, runs the migrate command, starts web + worker + beat from the virtualenv of the
Python running this script, and waits until ``/health/`` answers 200 (database, broker and a
worker round trip). It also checks that the production mode refuses to start without
SECRET_KEY. Every child process is stopped (by process group) whatever happens; on failure the
logs are printed and the exit status is non-zero.

    .venv/bin/python .ci/smoke_production.py [--keep-db]

Environment: SMOKE_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres) is where
the database is created and dropped; SMOKE_HEALTH_TIMEOUT (default 90) in seconds.
"""

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
BIN_DIR = Path(sys.executable).parent  # the virtualenv's bin/, not resolved through symlinks

PG_ADMIN_URL = os.environ.get("SMOKE_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "mis_smoke"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
BROKER_URL = "redis://127.0.0.1:6379/15"
HEALTH_TIMEOUT = float(os.environ.get("SMOKE_HEALTH_TIMEOUT", "90"))
STOP_TIMEOUT = 15
SERVICES = ("web", "worker", "beat")


class SmokeFailure(Exception):
    pass


def log(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


# --- docker-compose.yml ---------------------------------------------------------------------
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR, $$ (os.environ)."""

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = os.environ.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise SmokeFailure(f"docker-compose.yml: variable {name} is required: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, str(value))


def load_services() -> dict:
    with COMPOSE_FILE.open() as handle:
        compose = yaml.safe_load(handle)
    services = compose.get("services") or {}
    missing = [name for name in ("migrate", *SERVICES) if name not in services]
    if missing:
        raise SmokeFailure(f"docker-compose.yml has no service(s): {', '.join(missing)}")
    return services


def service_command(service: dict, name: str) -> list[str]:
    command = service.get("command")
    if not command:
        raise SmokeFailure(f"docker-compose.yml: service {name} has no command")
    args = shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]
    return [interpolate(arg) for arg in args]


def service_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = {}
        for item in environment:
            key, sep, value = str(item).partition("=")
            if sep:
                pairs[key] = value
            elif key in os.environ:
                pairs[key] = os.environ[key]
        environment = pairs
    return {
        str(key): interpolate("" if value is None else value) for key, value in environment.items()
    }


def resolve_executable(args: list[str]) -> list[str]:
    """gunicorn, celery, python: from the virtualenv that runs this script."""
    if args[0] == "python":
        return [sys.executable, *args[1:]]
    candidate = BIN_DIR / args[0]
    if "/" not in args[0] and candidate.exists():
        return [str(candidate), *args[1:]]
    return args


def replace_option(args: list[str], names: tuple[str, ...], value: str, what: str) -> list[str]:
    result, replaced, i = [], False, 0
    while i < len(args):
        arg = args[i]
        if arg in names and i + 1 < len(args):
            result += [arg, value]
            replaced, i = True, i + 2
            continue
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                arg, replaced = f"{name}={value}", True
        result.append(arg)
        i += 1
    if not replaced:
        raise SmokeFailure(f"docker-compose.yml: the {what} command has no {names[0]} option")
    return result


def local_environment(compose_env: dict[str, str], var_dir: Path, media_root: Path) -> dict:
    """The compose environment with the compose hosts (db, redis) replaced by the local ones."""
    if compose_env.get("MIS_MODE") != "production":
        raise SmokeFailure("docker-compose.yml does not set MIS_MODE=production for the app")
    env = dict(os.environ)
    env.update(compose_env)
    for key, value in compose_env.items():
        try:
            host = urllib.parse.urlsplit(value).hostname if "://" in value else None
        except ValueError:
            host = None
        if host == "db":
            env[key] = DATABASE_URL
        elif host == "redis":
            env[key] = BROKER_URL
    env.update(
        {
            "MIS_MODE": "production",
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MIS_VAR_DIR": str(var_dir),
            "MEDIA_ROOT": str(media_root),
            "PATH": str(BIN_DIR) + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONUNBUFFERED": "1",
            # gunicorn's control socket goes here instead of ~/.gunicorn/, which a gunicorn of
            # `make run` may be using.
            "XDG_RUNTIME_DIR": str(var_dir),
        }
    )
    return env


# --- PostgreSQL -------------------------------------------------------------------------------
def admin_sql(sql: str, params: tuple = ()) -> list:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def create_database() -> None:
    if admin_sql("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)):
        log(f"database {DB_NAME} exists")
        return
    admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    log(f"created database {DB_NAME}")


def drop_database() -> None:
    try:
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        log(f"dropped database {DB_NAME}")
    except Exception as exc:  # cleanup only: never hides the test's own result
        log(f"could not drop database {DB_NAME}: {type(exc).__name__}: {exc}")


# --- Processes -------------------------------------------------------------------------------
class Processes:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start(self, name: str, args: list[str], env: dict) -> None:
        log_path = self.log_dir / f"{name}.log"
        handle = log_path.open("wb")
        log(f"start {name}: {shlex.join(args)}")
        try:
            process = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            handle.close()
        self.running[name] = (process, log_path)

    def exited(self) -> dict[str, int]:
        return {
            name: process.returncode
            for name, (process, _) in self.running.items()
            if process.poll() is not None
        }

    def _signal(self, process: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(process.pid, sig)  # the process and its children (gunicorn/celery workers)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for process, _ in self.running.values():
            self._signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, (process, _) in self.running.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in {STOP_TIMEOUT}s; killing it")
            # Whatever is left in the group (a worker child that outlived its parent) goes too.
            self._signal(process, signal.SIGKILL)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {process.pid}) is still there after SIGKILL")

    def print_logs(self) -> None:
        for name, (_, log_path) in self.running.items():
            print(f"\n----- {name} log ({log_path}) -----", flush=True)
            try:
                print(log_path.read_text(errors="replace")[-20000:], flush=True)
            except OSError as exc:
                print(f"(unreadable: {exc})")


def run_once(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 15) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# --- The test --------------------------------------------------------------------------------
def check_refuses_without_secret_key(env: dict) -> None:
    without = {key: value for key, value in env.items() if key != "SECRET_KEY"}
    result = run_once([sys.executable, "manage.py", "check"], without, timeout=120)
    if result.returncode == 0 or "SECRET_KEY" not in result.stdout:
        raise SmokeFailure(
            "production mode should refuse to start without SECRET_KEY, but "
            f"`manage.py check` exited {result.returncode} with:\n{result.stdout}"
        )
    message = [line for line in result.stdout.splitlines() if "SECRET_KEY" in line][-1].strip()
    log(f"without SECRET_KEY: exit {result.returncode}: {message}")


def wait_for_health(base_url: str, processes: Processes) -> dict:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        exited = processes.exited()
        if exited:
            raise SmokeFailure(f"exited before /health/ answered 200: {exited}")
        try:
            status, body = http_get(base_url + "/health/")
        except (OSError, urllib.error.URLError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                return json.loads(body)
            last = f"HTTP {status}: {body[:500]}"
        time.sleep(1)
    raise SmokeFailure(f"/health/ did not answer 200 within {HEALTH_TIMEOUT:.0f}s; last: {last}")


def smoke(work_dir: Path, processes: Processes) -> None:
    services = load_services()
    var_dir, media_root = work_dir / "var", work_dir / "media"
    var_dir.mkdir()
    media_root.mkdir()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    commands, envs = {}, {}
    for name in ("migrate", *SERVICES):
        envs[name] = local_environment(service_environment(services[name]), var_dir, media_root)
        commands[name] = resolve_executable(service_command(services[name], name))
    commands["web"] = replace_option(commands["web"], ("--bind", "-b"), f"127.0.0.1:{port}", "web")
    commands["beat"] = replace_option(
        commands["beat"], ("--schedule", "-s"), str(var_dir / "celerybeat-schedule"), "beat"
    )

    create_database()

    log(f"migrate: {shlex.join(commands['migrate'])}")
    result = run_once(commands["migrate"], envs["migrate"])
    print(result.stdout, flush=True)
    if result.returncode != 0:
        raise SmokeFailure(f"migrate exited {result.returncode}")

    # As the image does at build time: production serves the collected files (whitenoise).
    result = run_once([sys.executable, "manage.py", "collectstatic", "--noinput"], envs["web"])
    if result.returncode != 0:
        print(result.stdout, flush=True)
        raise SmokeFailure(f"collectstatic exited {result.returncode}")
    log(f"collectstatic: {result.stdout.strip().splitlines()[-1]}")

    check_refuses_without_secret_key(envs["web"])

    for name in SERVICES:
        processes.start(name, commands[name], envs[name])

    started = time.monotonic()
    report = wait_for_health(base_url, processes)
    log(f"/health/ answered 200 after {time.monotonic() - started:.1f}s:")
    print(json.dumps(report, indent=2, ensure_ascii=False), flush=True)
    if report.get("mode") != "production" or report.get("status") != "ok":
        raise SmokeFailure(f"/health/ reports {report.get('status')!r} in {report.get('mode')!r}")

    paths = ["/health/live", "/health/ready", "/login/"]
    if (ROOT / "static" / "css" / "mis.css").exists():
        paths.append("/static/css/mis.css")
    for path in paths:
        status, body = http_get(base_url + path)
        if status != 200:
            raise SmokeFailure(f"GET {path}: HTTP {status}: {body[:1000]}")
        log(f"GET {path}: 200")

    # The API's throttles go through the cache (Redis here, as in compose): an anonymous request
    # must get the API's 401 error shape, not a 500 from an unreachable cache.
    status, body = http_get(base_url + "/api/v1/patients/")
    if status != 401 or '"not_authenticated"' not in body:
        raise SmokeFailure(f"GET /api/v1/patients/ anonymously: HTTP {status}: {body[:1000]}")
    log("GET /api/v1/patients/ (anonymous): 401 in the API's error shape")

    exited = processes.exited()
    if exited:
        raise SmokeFailure(f"exited during the test: {exited}")


def main() -> int:
    keep_db = "--keep-db" in sys.argv[1:]

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the finally below: children stop

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminate)

    work_dir = Path(tempfile.mkdtemp(prefix="mis-smoke-"))
    processes = Processes(work_dir)
    ok = False
    try:
        smoke(work_dir, processes)
        ok = True
    except SmokeFailure as exc:
        log(f"FAILED: {exc}")
    except subprocess.TimeoutExpired as exc:
        log(f"FAILED: timed out: {shlex.join(map(str, exc.cmd))}\n{exc.output or ''}")
    except Exception as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        import traceback

        traceback.print_exc()
    finally:
        processes.stop()
        if not ok:
            processes.print_logs()
        if not keep_db:
            drop_database()
        shutil.rmtree(work_dir, ignore_errors=True)
    log("OK: production mode serves /health/ with web, worker and beat" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
