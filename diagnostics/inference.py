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
    prediction = ml.predict(model, image)
    results = [
        LabelResult(f.label, f.probability, f.threshold, f.positive, f.severity)
        for f in prediction.findings
    ]
    explained = [r for r in results if r.positive] or sorted(
        results, key=lambda r: r.probability, reverse=True
    )[:1]
    for result in explained:
        cam = ml.gradcam(model, image, result.label)
        result.regions = [
            [box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]]
            for box in ml.regions(cam, REGION_LEVEL)
        ]
        if draw:
            result.heatmap_png, result.heatmap_size = heatmap_png(cam)
    height, width = image.shape
    return Analysis(
        model=model.key,
        labels=results,
        image_size=(width, height),
        inference_ms=round(prediction.seconds * 1000),
        total_ms=round((time.perf_counter() - started) * 1000),
    )


def heatmap_png(cam: np.ndarray) -> tuple[bytes, tuple[int, int]]:
    """A transparent colour overlay (blue → red, alpha rising with the heat) of the original
    image's aspect, at most ``HEATMAP_MAX_SIDE`` pixels on its long side."""
    height, width = cam.shape
    scale = min(1.0, HEATMAP_MAX_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        cam = np.asarray(
            Image.fromarray(cam.astype(np.float32), mode="F").resize(
                size, Image.Resampling.BILINEAR
            ),
            np.float32,
        )
    heat = np.clip(cam, 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4 * heat - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * heat - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * heat - 1), 0, 1)
    alpha = np.where(heat < 0.15, 0.0, 0.25 + 0.45 * heat)
    rgba = (np.stack([red, green, blue, alpha], axis=-1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue(), (rgba.shape[1], rgba.shape[0])
