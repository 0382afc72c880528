"""The torch side of an analysis: models loaded once per process, predict, Grad-CAM, heatmaps.

Imported only by the worker's task body and the predict endpoint (never at web start-up):
``import torch`` happens here through :mod:`diagnostics.ml.predict`.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

from diagnostics.ml import predict as ml
from diagnostics.ml.errors import WeightsError
from diagnostics.ml.images import GreyImage, read_image

HEATMAP_MAX_SIDE = 1024
REGION_LEVEL = 0.5
REGION_GRID = 64

_models: dict[tuple[str, str], ml.LoadedModel] = {}
_lock = threading.RLock()


def loaded_model(*, folder: str, sha256: str, key: str) -> ml.LoadedModel:
    """The model of ``folder``, loaded once per process (the sha256 is checked at load)."""
    cache_key = (folder, sha256)
    with _lock:
        model = _models.get(cache_key)
        if model is None:
            model = ml.load(Path(folder), threads=settings.ML_THREADS)
            if model.card.data.get("sha256") != sha256:
                raise WeightsError(
                    f"{key}: the card now names weights with sha256 "
                    f"{model.card.data.get('sha256')}, the registry checked {sha256}; "
                    "re-check the models in the admin."
                )
            _models[cache_key] = model
    return model


def forget_models() -> None:
    with _lock:
        _models.clear()


@dataclass
class LabelResult:
    label: str
    probability: float
    threshold: float
    positive: bool
    severity: str
    regions: list[list[int]] = field(default_factory=list)
    heatmap_png: bytes | None = None
    heatmap_size: tuple[int, int] = (0, 0)  # (width, height) of the PNG


@dataclass
class Analysis:
    model: str
    labels: list[LabelResult]
    image_size: tuple[int, int]  # (width, height) of the original
    inference_ms: int
    total_ms: int


def analyse(model: ml.LoadedModel, source: bytes | GreyImage, *, draw: bool = True) -> Analysis:
    """Calibrated findings of one image, with Grad-CAM regions (and heatmap PNGs when ``draw``)
    for each positive label, or for the most probable one when none is positive."""
    started = time.perf_counter()
    image = source if isinstance(source, GreyImage) else read_image(source)
    with _lock:  # Grad-CAM hooks the shared network: one image at a time per process
        return _analyse(model, image, draw=draw, started=started)


def _analyse(model: ml.LoadedModel, image: GreyImage, *, draw: bool, started: float) -> Analysis:
    cams, prediction = _predict_with_cams(model, image)
    results = [
        LabelResult(f.label, f.probability, f.threshold, f.positive, f.severity)
        for f in prediction.findings
    ]
    explained = [r for r in results if r.positive] or sorted(
        results, key=lambda r: r.probability, reverse=True
    )[:1]
    height, width = image.shape
    for result in explained:
        small = cams(result.label) if cams else None
        if small is None:  # no closed form for this network: Grad-CAM by backpropagation
            small = ml.gradcam(model, image, result.label)
        result.regions = _regions(small, (height, width))
        if draw:
            result.heatmap_png, result.heatmap_size = heatmap_png(small, (height, width))
    return Analysis(
        model=model.key,
        labels=results,
        image_size=(width, height),
        inference_ms=round(prediction.seconds * 1000),
        total_ms=round((time.perf_counter() - started) * 1000),
    )


def _gap_linear_head(network):
    """The final Linear when the Grad-CAM layer feeds global average pooling and one Linear
    (``resnet-s``); None otherwise."""
    import torch

    head = getattr(network, "head", None)
    if not isinstance(head, torch.nn.Sequential):
        return None
    layers = [m for m in head if not isinstance(m, (torch.nn.Flatten, torch.nn.Dropout))]
    if (
        len(layers) == 2
        and isinstance(layers[0], torch.nn.AdaptiveAvgPool2d)
        and layers[0].output_size in (1, (1, 1))
        and isinstance(layers[1], torch.nn.Linear)
        and network.gradcam_layer == "stage4"
    ):
        return layers[1]
    return None


def _predict_with_cams(model: ml.LoadedModel, image: GreyImage):
    """One forward pass giving the calibrated findings and, for a network whose Grad-CAM layer
    feeds global average pooling and a Linear layer, the Grad-CAM of any label in closed form:
    there the gradient of a logit with respect to activation channel k is W[label, k] / (H·W)
    at every position, so Grad-CAM = ReLU(Σ_k W[label, k] · A_k) up to a positive factor that
    the normalisation to the peak removes (tested equal to ``ml.gradcam``). Other networks get
    ``None`` and fall back to backpropagation."""
    import torch

    linear = _gap_linear_head(model.network)
    if linear is None:
        return None, ml.predict(model, image)
    captured = {}
    layer = getattr(model.network, model.network.gradcam_layer)
    handle = layer.register_forward_hook(lambda _m, _i, output: captured.update(a=output))
    begun = time.perf_counter()
    try:
        with torch.no_grad():
            logits = model.network(ml.prepare(model, image))[0].numpy()
    finally:
        handle.remove()
    prediction = ml.Prediction(
        model=model.key,
        findings=ml.findings_from_logits(model, logits),
        seconds=round(time.perf_counter() - begun, 4),
        logits=[float(v) for v in logits],
    )
    activation = captured["a"][0]  # (K, h, w)
    weights = linear.weight.detach()

    def cam(label: str) -> np.ndarray:
        index = model.card.labels.index(label)
        with torch.no_grad():
            return torch.relu(torch.einsum("k,khw->hw", weights[index], activation)).numpy()

    return cam, prediction


def _resize(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a map to (height, width), then scaled to its peak, as
    ``ml.gradcam`` does (a map without any positive value stays zero)."""
    import torch
    from torch.nn import functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(cam, np.float32))[None, None]
    if tuple(cam.shape) != tuple(size):
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    resized = tensor[0, 0].numpy()
    peak = float(resized.max())
    return resized / peak if peak > 0 else resized * 0


def _regions(cam: np.ndarray, shape: tuple[int, int]) -> list[list[int]]:
    """Boxes [x1, y1, x2, y2] in original pixels from the thresholded map, found on a copy at
    most ``REGION_GRID`` pixels on its long side (the map itself is coarser: 1/32 of the
    network's input) and scaled back."""
    height, width = shape
    scale = min(1.0, REGION_GRID / max(height, width))
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = _resize(cam, small)
    sy, sx = height / small[0], width / small[1]
    return [
        [
            int(box["x"] * sx),
            int(box["y"] * sy),
            min(width, round((box["x"] + box["width"]) * sx)),
            min(height, round((box["y"] + box["height"]) * sy)),
        ]
        for box in ml.regions(resized, REGION_LEVEL)
    ]


def heatmap_png(cam: np.ndarray, shape: tuple[int, int]) -> tuple[bytes, tuple[int, int]]:
    """A transparent colour overlay (blue → red, alpha rising with the heat) of the original
    image's aspect (``shape`` = its height, width), at most ``HEATMAP_MAX_SIDE`` pixels on its
    long side."""
    height, width = shape
    scale = min(1.0, HEATMAP_MAX_SIDE / max(height, width))
    cam = _resize(cam, (max(1, round(height * scale)), max(1, round(width * scale))))
    heat = np.clip(cam, 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4 * heat - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * heat - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * heat - 1), 0, 1)
    alpha = np.where(heat < 0.15, 0.0, 0.25 + 0.45 * heat)
    rgba = (np.stack([red, green, blue, alpha], axis=-1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), (rgba.shape[1], rgba.shape[0])
