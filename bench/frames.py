"""Bench: serving frames to a viewer, ours against Orthanc on the same files, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mis_bench \\
        .venv/bin/python bench/frames.py [--cold 8] [--warm 20] [--workers 2] [--threads 4] \\
        [--pairs ct_512/raw,...]

* Two images: a 512×512 16-bit CT slice and a 2000×2500 16-bit CR image (uncompressed).
* Debian's Orthanc beside our gunicorn (production settings, ``mis.wsgi`` with its signed-frame
  fast path, gthread workers with keep-alive as the Dockerfile runs them, audit on, the bench
  database), both fed the same files. Orthanc's storage cache is
  off (``MaximumStorageCacheSize`` 0) and ours starts with an empty frame cache.
* Pairs compared: our rendered 8-bit PNG (``/api/v1/instances/{id}/frames/0.png``) against
  Orthanc's ``/instances/{id}/preview``; our full-depth raw frame
  (``/api/v1/instances/{id}/frames/0.raw``) against Orthanc's ``/instances/{id}/frames/0/raw``.
* Ours as a viewer uses it: first the study's viewer metadata through the ordinary API
  (``/api/v1/studies/{id}/viewer/``: token, scope, the viewing-window audit event; timed and
  reported as **metadata**), then the frame through the signed URL it returned (**frame**).
  The target compares the frame fetch with Orthanc's; metadata+frame is reported beside it.
  Ours through the **ordinary** endpoint (no signed URL: scope and audit per request, what an
  integrator calls) is measured on copies of its own.
* **Cold**: every sample is the first read of a copy of the image that nobody has read yet
  (its own study, so the metadata request writes the viewing-window audit event), each
  endpoint on copies of its own. Orthanc's fetches and our signed ones alternate, copy by
  copy (and warm, request by request), so that both meet the same moments of the machine.
  **Warm**: the same copy read again and again (our frame cache, Orthanc's parsed-file cache,
  the audit window already open).
* The operating system's page cache is not dropped (that would disturb other work on the
  machine): both servers read files they have just written, alike.

Prints a table (p50/p95 in ms, bytes) and, as the last line, one JSON object; the target is
cold p50 of our frame fetch no slower than Orthanc's for each pair.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from ingest import free_port, multipart, prepare_django, start_ours, wait_http  # noqa: E402

IMAGES = {"ct_512": (512, 512, "CT"), "cr_2000x2500": (2500, 2000, "CR")}
PAIRS = {
    "png": ("/api/v1/instances/{ours}/frames/0.png", "/instances/{orthanc}/preview"),
    "raw": ("/api/v1/instances/{ours}/frames/0.raw", "/instances/{orthanc}/frames/0/raw"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", type=int, default=8, help="cold samples per endpoint")
    parser.add_argument("--warm", type=int, default=20, help="warm samples per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of ours")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per worker (the Dockerfile's: 4)"
    )
    parser.add_argument(
        "--pairs",
        default=",".join(f"{image}/{kind}" for image in IMAGES for kind in PAIRS),
        help="comma-separated pairs to measure (default: all), e.g. ct_512/raw",
    )
    args = parser.parse_args()
    args.pairs = [pair.strip() for pair in args.pairs.split(",") if pair.strip()]
    known = {f"{image}/{kind}" for image in IMAGES for kind in PAIRS}
    unknown = set(args.pairs) - known
    if unknown:
        parser.error(f"unknown pairs {sorted(unknown)}; known: {sorted(known)}")
    return args


def image_file(rows: int, columns: int, modality: str, seed: int) -> bytes:
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.1"
    rng = np.random.default_rng(seed)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "BENCH-FRAMES"
    ds.PatientName = "Bench^Frames"
    ds.Modality = modality
    ds.StudyDate, ds.StudyTime = "20261122", "101500"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if modality == "CT":
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelSpacing = [0.7, 0.7]
    else:
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.ImagerPixelSpacing = [0.15, 0.15]
    # A smooth body with noise, like an image (pure noise would flatter no PNG encoder).
    y, x = np.mgrid[0:rows, 0:columns]
    body = 1500 + 1000 * np.sin(x / 97.0) * np.cos(y / 131.0)
    ds.PixelData = (
        (body + rng.normal(0, 40, (rows, columns))).clip(0, 4095).astype(np.uint16).tobytes()
    )
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def start_orthanc(scratch: Path):
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(binary).exists():
        raise SystemExit("Debian's orthanc is not installed: apt-get install orthanc")
    port = free_port()
    config = {
        "Name": "bench-frames",
        "StorageDirectory": str(scratch / "orthanc-storage"),
        "IndexDirectory": str(scratch / "orthanc-index"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "MaximumStorageCacheSize": 0,  # cold reads come from the storage area
        "Plugins": [],
    }
    (scratch / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [binary, str(scratch / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(port, "/system")
    return process, port


def post(port: int, path: str, body: bytes, headers: dict) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    if response.status >= 300:
        raise SystemExit(f"upload to {port}{path} failed: {response.status} {payload[:300]!r}")
    return json.loads(payload)


def upload(files: list[bytes], our_port: int, orthanc_port: int | None, token: str) -> list[tuple]:
    """Each file to ours (and to Orthanc unless no port): [(our instance, our study, Orthanc
    instance or None), ...]."""
    ids = []
    for data in files:
        body, content_type = multipart([data])
        ours = post(
            our_port,
            "/api/v1/instances/",
            body,
            {"Content-Type": content_type, "Authorization": f"Token {token}"},
        )
        result = ours["results"][0]
        if result["status"] != "imported":
            raise SystemExit(f"our import failed: {result}")
        theirs = None
        if orthanc_port is not None:
            theirs = post(orthanc_port, "/instances", data, {"Content-Type": "application/dicom"})
        ids.append((result["instance"], result["study"], theirs["ID"] if theirs else None))
    return ids


def timed_get(connection: http.client.HTTPConnection, path: str, headers: dict) -> tuple:
    try:
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        # The server closed an idle keep-alive connection: once more on a new one (timed).
        connection.close()
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    payload = response.read()
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {payload[:300]!r}")
    return seconds * 1000.0, len(payload), payload


def summary(samples: list[tuple]) -> dict:
    times = sorted(sample[0] for sample in samples)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return {
        "samples_ms": [round(sample[0], 2) for sample in samples],
        "p50_ms": round(statistics.median(times), 3),  # unrounded enough for the ratios
        "p95_ms": round(p95, 3),
        "n": len(times),
        "bytes": samples[0][1],
    }


def fresh_copies(count, rows, columns, modality, seed, our_port, orthanc_port, token, label):
    files = [image_file(rows, columns, modality, seed + i) for i in range(count)]
    print(f"{label}: uploading {len(files)} copies…", file=sys.stderr)
    return upload(files, our_port, orthanc_port, token)


def line(name: str, kind: str, target: str, cold: dict, warm: dict | None) -> None:
    warm_text = (
        f"| warm p50 {warm['p50_ms']:8.1f} ms p95 {warm['p95_ms']:8.1f} "
        if warm
        else "|" + " " * 37
    )
    print(
        f"{name:<13} {kind:<4} {target:<16} cold p50 {cold['p50_ms']:8.1f} ms "
        f"p95 {cold['p95_ms']:8.1f} {warm_text}| {cold['bytes']:>9} bytes"
    )


def measure_pair(args, name, image, kind, ports, token, entry) -> None:
    """One image and endpoint kind: Orthanc, ours signed (metadata, then frame), ours
    ordinary; each on fresh copies, cold then warm."""
    rows, columns, modality = image
    our_path, their_path = PAIRS[kind]
    our_port, orthanc_port = ports
    auth = {"Authorization": f"Token {token}"}
    seed = zlib.crc32(f"{name}/{kind}".encode()) % 100_000 * 100
    signed = fresh_copies(args.cold, *image, seed, our_port, orthanc_port, token, f"{name} {kind}")
    ordinary = fresh_copies(
        args.cold, *image, seed + 50, our_port, None, token, f"{name} {kind} ordinary"
    )
    shutil.rmtree(Path(os.environ["FRAME_CACHE_DIR"]), ignore_errors=True)

    def connect(port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        timed_get(connection, "/system" if port == orthanc_port else "/health/live", {})
        return connection

    connection = connect(our_port)
    # As a viewer: the metadata of each study, then its frames. The studies' metadata requests
    # go first, so that each frame fetch is timed as a viewer scrolling a stack meets most of
    # them (not right after a Django request of its own).
    metadata, urls = [], []
    for instance, study, _ in signed:
        meta = timed_get(connection, f"/api/v1/studies/{study}/viewer/", auth)
        url = json.loads(meta[2])["urls"][kind].format(instance=instance, frame=0)
        if "?t=" not in url:
            raise SystemExit(f"no signed URL in the viewer metadata: {url}")
        metadata.append(meta)
        urls.append(url)
    # Orthanc's fetch and ours alternate, copy by copy, so that both meet the same moments of
    # a shared machine.
    theirs = connect(orthanc_port)
    cold_theirs, frames = [], []
    for (_, _, orthanc_id), url in zip(signed, urls, strict=True):
        cold_theirs.append(timed_get(theirs, their_path.format(orthanc=orthanc_id), {}))
        frames.append(timed_get(connection, url, auth))
    warm_theirs, warm = [], []
    for _ in range(args.warm):
        warm_theirs.append(timed_get(theirs, their_path.format(orthanc=signed[0][2]), {}))
        warm.append(timed_get(connection, urls[0], auth))
    theirs.close()
    both = [(meta[0] + frame[0], frame[1]) for meta, frame in zip(metadata, frames, strict=True)]
    entry["orthanc"] = {"cold": summary(cold_theirs), "warm": summary(warm_theirs)}
    entry["ours"] = {"cold": summary(frames), "warm": summary(warm)}
    entry["ours_metadata"] = {"cold": summary(metadata)}
    entry["ours_metadata_and_frame"] = {"cold": summary(both)}
    line(name, kind, "orthanc", entry["orthanc"]["cold"], entry["orthanc"]["warm"])
    line(name, kind, "ours frame", entry["ours"]["cold"], entry["ours"]["warm"])
    line(name, kind, "ours metadata", entry["ours_metadata"]["cold"], None)
    line(name, kind, "ours meta+frame", entry["ours_metadata_and_frame"]["cold"], None)

    cold = [timed_get(connection, our_path.format(ours=o), auth) for o, _, _ in ordinary]
    warm = [
        timed_get(connection, our_path.format(ours=ordinary[0][0]), auth) for _ in range(args.warm)
    ]
    connection.close()
    entry["ours_ordinary"] = {"cold": summary(cold), "warm": summary(warm)}
    line(
        name, kind, "ours ordinary", entry["ours_ordinary"]["cold"], entry["ours_ordinary"]["warm"]
    )


def main() -> int:
    args = parse_args()
    token, _config = prepare_django()
    results: dict = {"cold_samples": args.cold, "warm_samples": args.warm, "pairs": {}}
    with tempfile.TemporaryDirectory(prefix="mis-bench-frames-") as scratch_name:
        scratch = Path(scratch_name)
        os.environ["FRAME_CACHE_DIR"] = str(scratch / "frame-cache")
        os.environ["AUDIT_READS"] = "true"
        orthanc, orthanc_port = start_orthanc(scratch)
        ours, our_port = start_ours(scratch, args.workers, args.threads)
        try:
            # The floor of each server on this machine: an empty request (ours without the
            # database; Orthanc's /system), for reading the figures below.
            for target, port, path in (
                ("ours", our_port, "/health/live"),
                ("orthanc", orthanc_port, "/system"),
            ):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                floor = summary([timed_get(connection, path, {}) for _ in range(args.warm)])
                connection.close()
                results.setdefault("floor", {})[target] = floor
                print(f"floor {target:<8} {path:<14} p50 {floor['p50_ms']:6.1f} ms")
            for name, image in IMAGES.items():
                for kind in PAIRS:
                    if f"{name}/{kind}" not in args.pairs:
                        continue
                    entry = results["pairs"].setdefault(f"{name}/{kind}", {})
                    measure_pair(args, name, image, kind, (our_port, orthanc_port), token, entry)
        finally:
            for process in (ours, orthanc):
                process.terminate()
                process.wait(timeout=30)
    met = {}
    for pair, entry in results["pairs"].items():
        theirs = max(entry["orthanc"]["cold"]["p50_ms"], 1e-6)
        ratio = entry["ours"]["cold"]["p50_ms"] / theirs
        with_metadata = entry["ours_metadata_and_frame"]["cold"]["p50_ms"] / theirs
        ordinary = entry["ours_ordinary"]["cold"]["p50_ms"] / theirs
        entry["cold_p50_ours_over_orthanc"] = round(ratio, 3)
        entry["cold_p50_ours_metadata_and_frame_over_orthanc"] = round(with_metadata, 2)
        entry["cold_p50_ours_ordinary_over_orthanc"] = round(ordinary, 2)
        met[pair] = ratio <= 1.0
        print(
            f"{pair}: cold p50 ours/Orthanc = {ratio:.3f} (target ≤ 1.0); with the metadata "
            f"request {with_metadata:.2f}; ordinary endpoint {ordinary:.2f}"
        )
    results["target"] = "cold p50 of our signed frame fetch <= Orthanc's frame fetch"
    results["met"] = met
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
