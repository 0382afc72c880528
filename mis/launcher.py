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


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
    from django.conf import settings

    processes = {
        name: subprocess.Popen(cmd, start_new_session=True)
        for name, cmd in commands(str(settings.VAR_DIR)).items()
    }
    print(
        f"MIS ({settings.MIS_MODE}) at http://{HOST}:{PORT}/  — Ctrl+C stops web, worker and beat",
        flush=True,
    )
    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping the others", flush=True)
                exit_code = process.returncode or 1
                stopping = True
        time.sleep(0.5)
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
