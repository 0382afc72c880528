"""Start web, Celery worker and Celery beat together for the embedded mode (``make run``).

The three commands are the same as in docker-compose.yml; if one of them stops, the others are
stopped too, so that a half-running system never looks healthy.
"""

import os
import signal
import subprocess
import sys
import time

HOST = os.environ.get("MIS_HOST", "127.0.0.1")
PORT = os.environ.get("MIS_PORT", "8000")


def commands(var_dir: str) -> dict[str, list[str]]:
    bin_dir = os.path.dirname(sys.executable)
    return {
        "web": [
            os.path.join(bin_dir, "gunicorn"),
            "mis.wsgi:application",
            "--bind",
            f"{HOST}:{PORT}",
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads",
            "4",
            "--worker-class",
            "mis.gunicorn_workers.KeepAliveThreadWorker",
            "--access-logfile",
            "-",
        ],
        "worker": [
            os.path.join(bin_dir, "celery"),
            "-A",
            "mis",
            "worker",
            "-Q",
            "celery,inference,health",
            "--concurrency",
            "2",
            "-l",
            "INFO",
        ],
        "beat": [
            os.path.join(bin_dir, "celery"),
            "-A",
            "mis",
            "beat",
            "-l",
            "INFO",
            "--schedule",
            os.path.join(var_dir, "celerybeat-schedule"),
        ],
    }


def banner(settings) -> str:
    lines = [
        "",
        f"  MIS ({settings.MIS_MODE}) is running at http://{HOST}:{PORT}/",
        "  web, Celery worker and Celery beat started; Ctrl+C stops all three.",
    ]
    password_file = settings.VAR_DIR / "admin-password.txt"
    if password_file.exists():
        lines.append(f"  Administrator login: admin / {password_file.read_text().strip()}")
    return "\n".join([*lines, ""])


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
    from django.conf import settings

    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    processes: dict[str, subprocess.Popen] = {}
    exit_code = 0
    try:
        for name, cmd in commands(str(settings.VAR_DIR)).items():
            processes[name] = subprocess.Popen(cmd, start_new_session=True)
        banner_at = time.monotonic() + 4  # after the worker's and beat's own start-up banners
        while not stopping:
            if banner_at and time.monotonic() >= banner_at:
                banner_at = 0
                print(banner(settings), flush=True)
            for name, process in processes.items():
                if process.poll() is not None:
                    print(
                        f"{name} exited with {process.returncode}; stopping the others", flush=True
                    )
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        _stop_all(processes)
    return exit_code


def _stop_all(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()  # each shuts its own children down (Celery's warm shutdown)
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
