"""Bench: each shipped model's validation figures with CIs and its inference time on 2 cores.

    .venv/bin/python bench/evaluate_models.py [--datasets ../shared/datasets] [--images 50]

For every model version in ``ml_weights/`` that has weights:

* the card's validation figures (accuracy, sensitivity, specificity, AUROC with 95 % CIs, and
  the cross-validation mean accuracy where the card has one);
* when the data set is present, the same figures measured again through ``predict()`` over
  the card's validation list (they must equal the card's: the card is reproducible);
* per-image inference time with ``torch.set_num_threads(2)``: read, preprocess and predict of
  real validation images (or synthetic 2048×2048 16-bit images where the data set is absent),
  p50 and p95 after a warm-up, plus the Grad-CAM time.

Prints a table and, as the last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DATA_FOLDERS = {"pneumonia": "pneumonia/train", "scoliosis": "spine/dev"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(REPO_ROOT / "ml_weights"))
    parser.add_argument("--datasets", default=str(REPO_ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--images", type=int, default=50, help="images timed per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-remeasure",
        action="store_true",
        help="skip re-measuring the validation figures through predict()",
    )
    return parser.parse_args()


def synthetic_png(size: int = 2048) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    array = (rng.random((size, size)) * 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def time_model(model, sources, repeat: int) -> dict:
    from diagnostics.ml.images import read_image
    from diagnostics.ml.predict import gradcam, predict

    predict(model, sources[0])  # warm-up
    predict_ms, gradcam_ms = [], []
    for i in range(repeat):
        source = sources[i % len(sources)]
        started = time.perf_counter()
        prediction = predict(model, source)
        predict_ms.append((time.perf_counter() - started) * 1000)
        if i < min(repeat, 10):
            image = read_image(source)
            started = time.perf_counter()
            gradcam(model, image, prediction.findings[0].label)
            gradcam_ms.append((time.perf_counter() - started) * 1000)
    return {
        "predict_p50_ms": round(statistics.median(predict_ms), 1),
        "predict_p95_ms": round(sorted(predict_ms)[int(0.95 * (len(predict_ms) - 1))], 1),
        "gradcam_p50_ms": round(statistics.median(gradcam_ms), 1),
    }


def main() -> int:
    args = parse_args()
    import torch

    from diagnostics.ml.card import discover
    from diagnostics.ml.evaluate import evaluate, samples_for
    from diagnostics.ml.predict import load

    torch.set_num_threads(args.threads)
    cards, problems = discover(Path(args.weights))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    results = []
    print(f"{'model':<24}{'figure':<26}{'card':>8}  {'95 % CI':<18}{'re-measured':>12}")
    for card in cards:
        if not card.has_weights:
            print(f"{card.key:<24}unavailable: no weights installed")
            results.append({"model": card.key, "available": False})
            continue
        model = load(card.folder, threads=args.threads)
        data_root = Path(args.datasets) / DATA_FOLDERS.get(card.name, card.name)
        listing = card.folder / card.data["metrics"].get("validation_list", "validation.csv")
        remeasured = None
        sources = []
        if data_root.is_dir() and listing.is_file():
            samples = samples_for(model, data_root, listing)
            sources = [s.path for s in samples[: args.images]]
            if not args.no_remeasure:
                remeasured = evaluate(model, samples, bootstrap=200)
        if not sources:
            sources = [synthetic_png()]
        entry = {
            "model": card.key,
            "available": True,
            "method": card.data["metrics"]["method"],
            "card": {},
            "remeasured": {},
        }
        for label, metrics in card.data["metrics"]["per_label"].items():
            for name in ("accuracy", "sensitivity", "specificity", "auroc"):
                value, ci = metrics[name]["value"], metrics[name]["ci95"]
                again = remeasured["per_label"][label][name]["value"] if remeasured else None
                entry["card"][f"{label}.{name}"] = {"value": value, "ci95": ci}
                if again is not None:
                    entry["remeasured"][f"{label}.{name}"] = again
                print(
                    f"{card.key:<24}{label + ' ' + name:<26}{value:>8}  "
                    f"[{ci[0]}, {ci[1]}]{'':<4}{again if again is not None else '-':>12}"
                )
        if "mean_accuracy" in card.data["metrics"]:
            mean = card.data["metrics"]["mean_accuracy"]
            entry["card"]["cv_mean_accuracy"] = mean
            print(
                f"{card.key:<24}{'CV mean accuracy':<26}{mean['value']:>8}  "
                f"[{mean['ci95'][0]}, {mean['ci95'][1]}]"
            )
        entry["timing"] = time_model(model, sources, args.images)
        entry["timing"]["threads"] = args.threads
        entry["timing"]["images"] = "validation" if data_root.is_dir() else "synthetic 2048x2048"
        timing = entry["timing"]
        print(
            f"{card.key:<24}inference on {args.threads} threads: predict p50 "
            f"{timing['predict_p50_ms']} ms, p95 {timing['predict_p95_ms']} ms; Grad-CAM p50 "
            f"{timing['gradcam_p50_ms']} ms ({timing['images']} images)"
        )
        training = card.data["training"]
        entry["training_seconds"] = training.get("seconds")
        print(
            f"{card.key:<24}trained in {training.get('seconds')} s on {training.get('device')} "
            f"with {training.get('threads')} threads"
        )
        results.append(entry)
    print(json.dumps({"models": results}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
