"""Inference: load a model version once, predict calibrated probabilities, draw Grad-CAM.

``predict()`` applies the card's preprocessing, then the temperature, then the thresholds:
the probabilities and ``positive`` flags it returns are the calibrated ones the card reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .card import ModelCard
from .errors import WeightsError
from .images import GreyImage, read_image
from .metrics import sigmoid
from .nets import build


@dataclass
class LoadedModel:
    card: ModelCard
    network: torch.nn.Module

    @property
    def key(self) -> str:
        return self.card.key


@dataclass(frozen=True)
class Finding:
    label: str
    probability: float  # calibrated
    threshold: float
    positive: bool
    severity: str  # "none", "low", "moderate", "high"


@dataclass
class Prediction:
    model: str
    findings: list[Finding]
    seconds: float
    logits: list[float] = field(default_factory=list)

    @property
    def positive(self) -> list[Finding]:
        return [f for f in self.findings if f.positive]


def load(folder: Path, *, threads: int | None = None) -> LoadedModel:
    """Load a model version from its folder; the weights' sha256 must match the card."""
    card = ModelCard.load(folder)
    card.verify_weights()
    if threads:
        torch.set_num_threads(threads)
    network = build(card.architecture, len(card.labels))
    try:
        state = torch.load(card.weights_path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise WeightsError(
            f"{card.key}: the weights do not fit the {card.architecture} network: {exc}"
        ) from None
    network.eval()
    return LoadedModel(card, network)


def prepare(model: LoadedModel, image: GreyImage | np.ndarray) -> torch.Tensor:
    """The card's preprocessing (resize, then normalization) → a (1, 1, H, W) tensor."""
    pixels = image.pixels if isinstance(image, GreyImage) else np.asarray(image, np.float32)
    preprocessing = model.card.preprocessing
    resized = preprocessing.resize(pixels)
    return preprocessing.normalize(
        torch.from_numpy(np.array(resized, dtype=np.float32))[None, None]
    )


def severity_of(probability: float, threshold: float, cut_points: dict) -> str:
    if probability < threshold:
        return "none"
    if probability >= cut_points.get("high", 2.0):
        return "high"
    if probability >= cut_points.get("moderate", 2.0):
        return "moderate"
    return "low"


def findings_from_logits(model: LoadedModel, logits: np.ndarray) -> list[Finding]:
    card = model.card
    probabilities = sigmoid(np.asarray(logits, np.float64) / card.temperature)
    thresholds = card.thresholds
    cut_points = card.data.get("severity", {})
    findings = []
    for label, probability in zip(card.labels, probabilities, strict=True):
        threshold = thresholds[label]
        probability = float(probability)
        findings.append(
            Finding(
                label=label,
                probability=round(probability, 6),
                threshold=threshold,
                positive=probability >= threshold,
                severity=severity_of(probability, threshold, cut_points),
            )
        )
    return findings


def predict(model: LoadedModel, source: str | Path | bytes | GreyImage) -> Prediction:
    """Calibrated findings for one image (a path, bytes of DICOM/PNG/JPEG, or a grey image)."""
    started = time.perf_counter()
    image = source if isinstance(source, GreyImage) else read_image(source)
    with torch.no_grad():
        logits = model.network(prepare(model, image))[0].numpy()
    return Prediction(
        model=model.key,
        findings=findings_from_logits(model, logits),
        seconds=round(time.perf_counter() - started, 4),
        logits=[float(v) for v in logits],
    )


def gradcam(model: LoadedModel, image: GreyImage, label: str) -> np.ndarray:
    """Grad-CAM of ``label`` over the image, resized to the original image size, in [0, 1]."""
    network = model.network
    index = model.card.labels.index(label)
    layer = getattr(network, network.gradcam_layer)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["activation"] = output

    handle = layer.register_forward_hook(keep)
    try:
        network.zero_grad(set_to_none=True)
        logits = network(prepare(model, image))
        logits[0, index].backward()
    finally:
        handle.remove()
    activation = captured["activation"]
    weights = activation.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    height, width = image.shape
    cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    return (cam / peak).numpy().astype(np.float32) if peak > 0 else cam.numpy() * 0


def regions(heatmap: np.ndarray, level: float = 0.5, *, max_regions: int = 3) -> list[dict]:
    """Bounding boxes (original-image pixels) of the connected areas above ``level``.

    Found on a copy at most 128 pixels on its long side (the heatmap is that coarse anyway),
    then scaled back to the image.
    """
    step = max(1, int(np.ceil(max(heatmap.shape) / 128)))
    small = heatmap[::step, ::step]
    mask = small >= level
    seen = np.zeros_like(mask)
    boxes = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        stack, ys, xs = [(y, x)], [], []
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            ys.append(cy)
            xs.append(cx)
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]:
                    if mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        top, left = min(ys) * step, min(xs) * step
        bottom = min(heatmap.shape[0], (max(ys) + 1) * step)
        right = min(heatmap.shape[1], (max(xs) + 1) * step)
        boxes.append(
            {
                "x": int(left),
                "y": int(top),
                "width": int(right - left),
                "height": int(bottom - top),
                "peak": round(float(small[ys, xs].max()), 4),
                "area": len(ys) * step * step,
            }
        )
    boxes.sort(key=lambda box: box["area"], reverse=True)
    return boxes[:max_regions]
