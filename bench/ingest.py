"""Bench: DICOM ingest rate against Orthanc on the same files, and import_dicom's peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench \\
        .venv/bin/python bench/ingest.py [--files 200] [--clients 4] [--zip-mb 1024]

* Generates 512×512 16-bit CT instances (fresh UIDs for every run, made before the clock runs).
* Starts Debian's Orthanc (installing the package with apt-get if it is absent) on a spare
  port with ``SyncStorageArea`` (fsync) on, and our web server (gunicorn as production runs it:
  3 workers of 4 threads; production settings, the bench database, audit on, a Redis broker
  for the thumbnail jobs) beside it.
* ``--warmup`` untimed 1-file uploads to each server first (a gunicorn worker's first requests
  import and connect, which a long-running server has done long ago).
* ``--clients`` threads upload the same files to each, 1 and 20 files per request: ours as multipart
  ``file`` fields to ``POST /api/v1/instances/``, Orthanc's as one DICOM body (1) or one ZIP
  (20) to ``POST /instances``. Rate = files / wall time.
* ``--rounds`` rounds (the order of the two servers alternating) on a machine shared with other
  work: the medians of the rates and of the per-round ratios are reported.
* Peak memory of ``manage.py import_dicom`` on a ZIP of about ``--zip-mb`` MB (0 skips).

Prints a table and, as the last line, one JSON object with the rates, ratios and targets
(ours ≥ 0.6× Orthanc at 1 file per request, ≥ 1.0× at 20; import_dicom peak < 300 MB).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
TARGETS = {"ratio_1": 0.6, "ratio_20": 1.0, "import_peak_mb": 300}
BENCH_USER = "bench-ingest"
BENCH_DEPARTMENT = "bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="files per run")
    parser.add_argument("--clients", type=int, default=4)
    # Production's gunicorn (Dockerfile, docker-compose.yml): 3 workers of 4 threads each.
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers of ours")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of both servers; medians are reported"
    )
    parser.add_argument(
        "--warmup", type=int, default=24, help="untimed 1-file uploads to each server first"
    )
    parser.add_argument("--zip-mb", type=int, default=1024, help="ZIP size for the memory run")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ct_file(seed: int) -> bytes:
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = f"BENCH-{seed % 50:04d}"
    ds.PatientName = "Bench^Patient"
    ds.Modality = "CT"
    ds.StudyDate, ds.StudyTime = "20261122", "101500"
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def batches(files: list[bytes], size: int) -> list[list[bytes]]:
    return [files[i : i + size] for i in range(0, len(files), size)]


def multipart(files: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for index, data in enumerate(files):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="f{index}.dcm"\r\nContent-Type: application/dicom\r\n\r\n'.encode()
        )
        parts.append(data)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def zipped(files: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index, data in enumerate(files):
            archive.writestr(f"f{index}.dcm", data)
    return buffer.getvalue()


def request_for(target: str, batch: list[bytes], token: str) -> tuple[bytes, dict]:
    """Ours: multipart ``file`` fields; Orthanc: one DICOM body (1 file) or one ZIP."""
    if target == "ours":
        body, content_type = multipart(batch)
        return body, {
            "Content-Type": content_type,
            "Authorization": f"Token {token}",
            "_path": "/api/v1/instances/",
        }
    if len(batch) == 1:
        return batch[0], {"Content-Type": "application/dicom", "_path": "/instances"}
    return zipped(batch), {"Content-Type": "application/zip", "_path": "/instances"}


def one_file_request(target: str, data: bytes, token: str) -> tuple[bytes, dict]:
    return request_for(target, [data], token)


def upload_run(port: int, requests: list[tuple[bytes, dict]], clients: int) -> tuple[float, int]:
    """Send prepared (body, headers) requests from ``clients`` threads; (seconds, failures)."""
    queue = list(requests)
    lock = threading.Lock()
    failures = [0]

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if not queue:
                    break
                body, headers = queue.pop()
            connection.request("POST", headers.pop("_path"), body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            data = json.loads(payload) if payload[:1] in (b"{", b"[") else {}
            results = data.get("results", []) if isinstance(data, dict) else []  # ours only
            rejected = any(r.get("status") == "rejected" for r in results)
            if response.status >= 300 or rejected:
                with lock:
                    failures[0] += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, failures[0]


def wait_http(port: int, path: str, seconds: float = 60, headers=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path, headers=headers or {})
            if connection.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"Nothing answered on port {port}{path} within {seconds} s.")


def start_orthanc(scratch: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(binary).exists():
        print("installing Debian's orthanc…", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "orthanc"], check=True, stdout=subprocess.DEVNULL
        )
    port = free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(scratch / "orthanc-storage"),
        "IndexDirectory": str(scratch / "orthanc-index"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "SyncStorageArea": True,
        "Plugins": [],
        "HttpThreadsCount": 50,
    }
    (scratch / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [binary, str(scratch / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(port, "/system")
    return process, port


def prepare_django() -> tuple[str, dict]:
    from patients_search import ensure_database, postgres_settings  # the benches' one way

    config = postgres_settings()  # exits with a clear message unless DATABASE_URL is PostgreSQL
    ensure_database(config)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import Department
    from accounts.roles import REGISTRAR
    from accounts.tests.factories import UserFactory

    department, _ = Department.objects.get_or_create(
        code=BENCH_DEPARTMENT, defaults={"name": "Bench"}
    )
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=BENCH_USER).first()
    if user is None:
        user = UserFactory(username=BENCH_USER, role=REGISTRAR, departments=[department])
    from accounts.audit import Actor
    from accounts.tokens import token_create

    _token, key = token_create(actor=Actor.system("bench"), user=user, name="bench")
    return key, config


# The Dockerfile's worker class: gthread answering a kept-alive connection's next request in the
# same thread (mis/gunicorn_workers.py).
THREAD_WORKER = "mis.gunicorn_workers.KeepAliveThreadWorker"


def start_ours(
    scratch: Path, workers: int, threads: int | None = None
) -> tuple[subprocess.Popen, int]:
    """Our gunicorn; ``threads`` as the Dockerfile's ``--threads`` (gthread workers, keep-alive)."""
    port = free_port()
    env = {
        **os.environ,
        "MIS_MODE": "production",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "MEDIA_ROOT": str(scratch / "media"),
        "API_THROTTLE_USER": "1000000/min",
        "API_THROTTLE_TOKEN": "1000000/min",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "mis.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            *(["--threads", str(threads), "--worker-class", THREAD_WORKER] if threads else []),
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    wait_http(port, "/health/live")
    return process, port


def memory_run(zip_mb: int, scratch: Path) -> dict:
    count = max(1, zip_mb * 1024 * 1024 // 524_700)
    path = scratch / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"cd/IM{index:06d}.dcm", ct_file(100_000 + index))
    size_mb = path.stat().st_size / 1e6
    # The command runs in a process of its own that reports its own peak: VmHWM from
    # /proc/self/status, which starts afresh at exec (ru_maxrss would carry over the peak of
    # this bench process, which forked it while holding the generated files).
    code = (
        "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'mis.settings'); django.setup(); from django.core.management import call_command; "
        f"call_command('import_dicom', {str(path)!r}, user={BENCH_USER!r}, "
        f"department={BENCH_DEPARTMENT!r}, quiet_files=True); "
        "print('PEAK_KB', [l.split()[1] for l in open('/proc/self/status') "
        "if l.startswith('VmHWM')][0])"
    )
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "MEDIA_ROOT": str(scratch / "media-import")},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    peaks = [
        line.split()[1] for line in completed.stdout.splitlines() if line.startswith("PEAK_KB")
    ]
    peak_mb = int(peaks[-1]) / 1024 if peaks else float("nan")
    return {
        "zip_mb": round(size_mb),
        "files": count,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb),
        "summary": completed.stdout.strip()[-200:],
        "returncode": completed.returncode,
    }


def main() -> int:
    args = parse_args()
    token, _config = prepare_django()
    results: dict = {"files_per_run": args.files, "clients": args.clients}
    with tempfile.TemporaryDirectory(prefix="mis-bench-ingest-") as scratch_name:
        scratch = Path(scratch_name)
        orthanc, orthanc_port = start_orthanc(scratch)
        ours, our_port = start_ours(scratch, args.workers, args.threads)
        try:
            seed = 0
            if args.warmup:
                # Untimed: every gunicorn worker imports its lazy modules and opens its database
                # and broker connections on its first requests (about a second each), which a
                # long-running server has long done; Orthanc gets the same uploads.
                files = [ct_file(seed + i) for i in range(args.warmup)]
                seed += args.warmup
                for target, port in (("orthanc", orthanc_port), ("ours", our_port)):
                    upload_run(port, [one_file_request(target, f, token) for f in files], 4)
            ratios: dict[int, list[float]] = {1: [], 20: []}
            for round_ in range(args.rounds):
                for per_request in (1, 20):
                    # The same files to both (each server has its own store: no duplicates);
                    # who goes first alternates from round to round.
                    files = [ct_file(seed + i) for i in range(args.files)]
                    seed += args.files
                    order = ("orthanc", "ours") if round_ % 2 == 0 else ("ours", "orthanc")
                    rates = {}
                    for target in order:
                        requests = [
                            request_for(target, batch, token)
                            for batch in batches(files, per_request)
                        ]
                        port = orthanc_port if target == "orthanc" else our_port
                        seconds, failures = upload_run(port, requests, args.clients)
                        rates[target] = rate = args.files / seconds
                        runs = results.setdefault(f"{target}_{per_request}", {"runs": []})
                        runs["runs"].append(round(rate, 1))
                        runs["failures"] = runs.get("failures", 0) + failures
                        print(
                            f"round {round_ + 1} {target:<8} {per_request:>2} file(s)/request: "
                            f"{rate:8.1f} files/s  ({failures} failed requests)"
                        )
                    ratios[per_request].append(rates["ours"] / rates["orthanc"])
        finally:
            for process in (ours, orthanc):
                process.terminate()
                process.wait(timeout=30)
        for n in (1, 20):
            for target in ("orthanc", "ours"):
                entry = results[f"{target}_{n}"]
                entry["files_per_s"] = statistics.median(entry["runs"])
            results[f"ratio_{n}_runs"] = [round(r, 2) for r in ratios[n]]
            ratio = statistics.median(ratios[n])
            results[f"ratio_{n}"] = round(ratio, 2)
            print(
                f"ours / Orthanc at {n} file(s)/request: median {ratio:.2f} of "
                f"{results[f'ratio_{n}_runs']} (target ≥ {TARGETS[f'ratio_{n}']})"
            )
        if args.zip_mb:
            memory = memory_run(args.zip_mb, scratch)
            results["import_dicom"] = memory
            print(
                f"import_dicom of a {memory['zip_mb']} MB ZIP ({memory['files']} files): "
                f"{memory['seconds']} s, peak RSS {memory['peak_rss_mb']} MB "
                f"(target < {TARGETS['import_peak_mb']}); {memory['summary']}"
            )
    results["targets"] = TARGETS
    results["met"] = {
        "ratio_1": results["ratio_1"] >= TARGETS["ratio_1"],
        "ratio_20": results["ratio_20"] >= TARGETS["ratio_20"],
        "import_peak": results.get("import_dicom", {}).get("peak_rss_mb", 0)
        < TARGETS["import_peak_mb"],
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
