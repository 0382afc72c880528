"""Bench: the inference worker's fixed per-image overhead, its throughput, and upload-to-result
latency with a real Celery worker, for the shipped pneumonia model.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \\
        .venv/bin/python bench/inference.py [--images 30] [--threads 2]

* Images: ``--images`` JPEGs of the pneumonia data set (``ML_DATASETS_DIR/pneumonia/train``,
  both classes), uploaded through the ingest service as chest X-rays (PA) of a 5-year-old.
* **Bare** (this process): ``ml.predict()`` on each file's bytes = read + the card's
  preprocessing + forward, ``--threads`` torch threads. ``ml.gradcam()`` (backpropagation) is
  timed too, for comparison: the worker gets resnet-s's Grad-CAM in closed form from its one
  forward pass.
* **Worker**: ``celery -A mis worker -Q inference -c 1`` with ``ML_THREADS=--threads`` (one
  worker on 2 cores). Its time per image is the run's ``processing_ms`` (claim, read the stored
  file, predict, Grad-CAM for the positive/top label, heatmap PNG, findings written in one
  transaction). **Overhead** = worker time − bare time of the same image (p50).
* **Latency**: upload (ingest + commit + send) to the run's ``succeeded`` as seen in the
  database, one image at a time. **Throughput**: ``--images`` uploaded at once, images / (last
  finished − first started) on the worker's clock.

Prints a table and, as the last line, one JSON object with the figures and the targets
(overhead p50 ≤ 50 ms; latency p50 < 2 s with Grad-CAM).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
TARGETS = {"overhead_p50_ms": 50, "latency_p50_ms": 2000}
MODEL = "pneumonia"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def pick_images(count: int) -> list[Path]:
    from django.conf import settings

    root = Path(settings.ML_DATASETS_DIR) / "pneumonia" / "train"
    if not root.is_dir():
        sys.exit(f"inference: {root} is missing (ML_DATASETS_DIR); the bench needs the data set.")
    normal = sorted((root / "NORMAL").glob("*.jpeg"))[: count // 2]
    pneumonia = sorted((root / "PNEUMONIA").glob("*.jpeg"))[: count - len(normal)]
    return normal + pneumonia


def prepare(scratch: Path):
    from patients_search import ensure_database, postgres_settings

    config = postgres_settings()
    ensure_database(config)
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        sys.exit("inference: set CELERY_BROKER_URL to a Redis (e.g. redis://127.0.0.1:6379/15).")
    os.environ["MEDIA_ROOT"] = str(scratch / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import Department
    from accounts.roles import REGISTRAR
    from accounts.tests.factories import UserFactory
    from diagnostics.models import AIModel
    from diagnostics.registry import registry_sync
    from patients.models import Patient

    registry_sync()
    AIModel.objects.exclude(name=MODEL).update(active=False)  # time one model alone
    AIModel.objects.filter(name=MODEL, version="1.0.0").update(active=True)
    department, _ = Department.objects.get_or_create(code="bench", defaults={"name": "Bench"})
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username="bench-inference").first()
    if user is None:
        user = UserFactory(username="bench-inference", role=REGISTRAR, departments=[department])
    patient = Patient.objects.filter(mrn="BENCH-CHILD").first()
    if patient is None:
        from patients.tests.factories import PatientFactory

        patient = PatientFactory(
            mrn="BENCH-CHILD",
            department=department,
            birth_date=dt.date.today() - dt.timedelta(days=5 * 365),
        )
    return user, patient, department


def bare_times(paths: list[Path], threads: int) -> tuple[list[float], list[float]]:
    from django.conf import settings

    from diagnostics.ml import predict as ml
    from diagnostics.ml.images import read_image

    model = ml.load(Path(settings.ML_WEIGHTS_DIR) / MODEL / "1.0.0", threads=threads)
    ml.predict(model, paths[0].read_bytes())  # warm-up
    bare, cams = [], []
    for path in paths:
        data = path.read_bytes()
        started = time.perf_counter()
        prediction = ml.predict(model, data)
        bare.append((time.perf_counter() - started) * 1000)
        image = read_image(data)
        top = max(prediction.findings, key=lambda f: f.probability).label
        started = time.perf_counter()
        ml.gradcam(model, image, top)
        cams.append((time.perf_counter() - started) * 1000)
    return bare, cams


def start_worker(scratch: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "ML_THREADS": str(threads), "MIS_VAR_DIR": str(scratch / "var")}
    log = open(scratch / "worker.log", "wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mis",
            "worker",
            "-Q",
            "inference",
            "-c",
            "1",
            "-n",
            f"bench-inference-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "WARNING",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def upload(user, patient, department, path: Path):
    from accounts.audit import Actor
    from diagnostics.models import AnalysisRun
    from studies.ingest import StudyFields, ingest_file

    result = ingest_file(
        actor=Actor(user=user),
        data=path.read_bytes(),
        name=path.name,
        fields=StudyFields(
            department=department,
            patient=patient,
            category="chest_xray",
            body_part="CHEST",
            view_position="PA",
        ),
    )
    if result.status != "imported":
        sys.exit(f"inference: {path.name} was {result.status}: {result.message}")
    return AnalysisRun.objects.get(instance_id=result.instance_id, model__name=MODEL)


def wait_done(run_ids: list[int], timeout: float = 600) -> list:
    from diagnostics.models import AnalysisRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(AnalysisRun.objects.filter(pk__in=run_ids))
        if all(r.status in ("succeeded", "failed", "not_applicable") for r in runs):
            return runs
        time.sleep(0.01)
    sys.exit("inference: the worker did not finish in time (see worker.log).")


def main() -> None:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    user, patient, department = prepare(scratch)
    paths = pick_images(args.images)
    bare, cams = bare_times(paths, args.threads)
    worker = start_worker(scratch, args.threads)
    try:
        first = upload(user, patient, department, paths[0])  # warm-up: the worker starts
        (done,) = wait_done([first.pk], timeout=300)
        if done.status != "succeeded":
            sys.exit(f"inference: the warm-up run failed: {done.error}")
        latencies, worker_ms = [], []
        for path in paths:
            started = time.perf_counter()
            run = upload(user, patient, department, path)
            (done,) = wait_done([run.pk])
            latencies.append((time.perf_counter() - started) * 1000)
            worker_ms.append(done.processing_ms)
        batch = [upload(user, patient, department, path).pk for path in paths]
        runs = wait_done(batch)
        span = (max(r.finished_at for r in runs) - min(r.started_at for r in runs)).total_seconds()
        throughput = len(runs) / span if span > 0 else float("nan")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    overhead = [w - b for w, b in zip(worker_ms, bare, strict=True)]
    figures = {
        "images": len(paths),
        "threads": args.threads,
        "bare_p50_ms": round(percentile(bare, 50), 1),
        "gradcam_backprop_p50_ms": round(percentile(cams, 50), 1),
        "worker_p50_ms": round(percentile(worker_ms, 50), 1),
        "overhead_p50_ms": round(percentile(overhead, 50), 1),
        "images_per_s": round(throughput, 2),
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
    }
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    figures["targets"] = TARGETS
    figures["met"] = {
        "overhead_p50_ms": figures["overhead_p50_ms"] <= TARGETS["overhead_p50_ms"],
        "latency_p50_ms": figures["latency_p50_ms"] < TARGETS["latency_p50_ms"],
    }
    print(f"{'figure':<36} value")
    for key, value in figures.items():
        if key not in ("targets", "met"):
            print(f"{key:<36} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
