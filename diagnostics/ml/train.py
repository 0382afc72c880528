"""Training from scratch: augmentation, class balancing, early stopping, checkpoint and resume.

The network gets one logit per finding; ``class_names[0]`` is the negative class ("normal")
and every other class is a finding. :func:`fit` trains one network on a train/validation pair
of arrays and returns the best network (by validation loss) with its validation logits.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .metrics import auroc
from .nets import build
from .preprocess import standardize


@dataclass
class TrainConfig:
    name: str
    version: str
    class_names: list[str]
    size: tuple[int, int] = (192, 192)
    architecture: str = "resnet-s"
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    patience: int = 8
    seed: int = 42
    validation_fraction: float = 0.2
    folds: int = 0  # >1: k-fold cross-validation by patient, then a final fit on everything
    horizontal_flip: bool = False  # never for chest X-rays: laterality matters
    rotate_degrees: float = 8.0
    scale_range: tuple[float, float] = (0.9, 1.12)
    translate_fraction: float = 0.06
    target_sensitivity: float = 0.95
    max_minutes: float = 85.0
    threads: int = 2
    device: str = "auto"
    extra: dict = field(default_factory=dict)

    @property
    def num_outputs(self) -> int:
        return len(self.class_names) - 1

    def to_card(self) -> dict:
        data = asdict(self)
        data["size"] = list(self.size)
        data["scale_range"] = list(self.scale_range)
        data.pop("extra")
        return data


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def targets_for(labels: np.ndarray, num_outputs: int) -> np.ndarray:
    """Class indices → one multi-hot row per image (class 0 is all zeros)."""
    targets = np.zeros((len(labels), num_outputs), dtype=np.float32)
    for row, label in enumerate(labels):
        if label > 0:
            targets[row, label - 1] = 1.0
    return targets


def augment(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random geometry and exposure on a (N, 1, H, W) batch in [0, 1], as films really vary.

    Small rotations, zoom and shifts (positioning), gamma, contrast and brightness (exposure,
    detector), blur and noise (resolution, dose). No left–right flip unless the config allows it.
    """
    n = batch.shape[0]
    device = batch.device

    def uniform(low, high, *shape):
        return torch.rand(*shape, generator=generator).to(device) * (high - low) + low

    angle = uniform(-config.rotate_degrees, config.rotate_degrees, n) * math.pi / 180
    scale = uniform(*config.scale_range, n)
    shift = uniform(-config.translate_fraction, config.translate_fraction, n, 2) * 2
    flip = torch.ones(n, device=device)
    if config.horizontal_flip:
        flip = torch.where(uniform(0, 1, n) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift[:, 0]], 1),
            torch.stack([sin * flip, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    # Pad with the image's own edge values, not black: a black wedge is a shortcut to learn.
    batch = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)

    gamma = torch.exp(uniform(-0.35, 0.35, n, 1, 1, 1))
    batch = batch.clamp(0, 1) ** gamma
    contrast = uniform(0.75, 1.3, n, 1, 1, 1)
    brightness = uniform(-0.1, 0.1, n, 1, 1, 1)
    mean = batch.mean(dim=(2, 3), keepdim=True)
    batch = (batch - mean) * contrast + mean + brightness

    blur = uniform(0, 1, n) < 0.25
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0], device=device)
        kernel = (kernel[:, None] * kernel[None, :]) / 16
        blurred = F.conv2d(batch[blur], kernel.view(1, 1, 3, 3), padding=1)
        batch = batch.clone()
        batch[blur] = blurred
    noise = uniform(0, 0.03, n, 1, 1, 1)
    batch = batch + torch.randn(batch.shape, generator=generator).to(device) * noise
    return batch


def _balanced_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of indices drawn with equal weight per class (class balancing)."""
    classes, counts = np.unique(labels, return_counts=True)
    weights = np.zeros(len(labels))
    for cls, count in zip(classes, counts, strict=True):
        weights[labels == cls] = 1.0 / count
    weights /= weights.sum()
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights)


@dataclass
class FitResult:
    model: nn.Module
    validation_logits: np.ndarray
    history: list[dict]
    best_epoch: int
    seconds: float
    stopped: str


def predict_logits(
    model: nn.Module, images: np.ndarray, device, batch_size: int = 64
) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size].astype(np.float32))
            batch = standardize(batch[:, None].to(device))
            outputs.append(model(batch).float().cpu().numpy())
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outputs)


def fit(
    config: TrainConfig,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    epochs: int | None = None,
    checkpoint: Path | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    deadline: float | None = None,
) -> FitResult:
    """Train one network.

    With ``validation``, the best epoch by validation loss is kept and training stops after
    ``patience`` epochs without improvement. Without it, the network trains for ``epochs``.
    ``checkpoint`` is written after each epoch and resumed from when it exists.
    """
    seed_everything(config.seed)
    torch.set_num_threads(max(1, config.threads))
    device = pick_device(config.device)
    epochs = epochs or config.epochs
    model = build(config.architecture, config.num_outputs).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, math.ceil(len(train[0]) / config.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.learning_rate,
        total_steps=epochs * steps_per_epoch,
        pct_start=0.15,
    )
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_images, train_labels = train
    train_targets = targets_for(train_labels, config.num_outputs)
    history: list[dict] = []
    best = {"loss": float("inf"), "epoch": -1, "state": None}
    start_epoch, elapsed_before = 0, 0.0

    fingerprint = _fingerprint(config, train, validation, epochs)
    saved = None
    if checkpoint and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if saved.get("fingerprint", fingerprint) != fingerprint:
            saved = None  # a checkpoint of other data or settings: start afresh
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        rng.bit_generator.state = saved["rng"]
        if "torch_rng" in saved:  # dropout draws from the global generator
            torch.set_rng_state(saved["torch_rng"])
        history, best = saved["history"], saved["best"]
        start_epoch, elapsed_before = saved["epoch"] + 1, saved["seconds"]

    started = time.monotonic() - elapsed_before
    stopped = "completed"
    for epoch in range(start_epoch, epochs):
        model.train()
        order = _balanced_indices(train_labels, rng)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            if len(index) < 2:
                continue
            batch = torch.from_numpy(train_images[index].astype(np.float32))[:, None].to(device)
            target = torch.from_numpy(train_targets[index]).to(device)
            batch = standardize(augment(batch, config, generator))
            smooth = target * (1 - config.label_smoothing) + config.label_smoothing / 2
            loss = F.binary_cross_entropy_with_logits(model(batch), smooth)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
            if progress:
                progress(epoch * steps_per_epoch + step + 1, epochs * steps_per_epoch, {})
        record = {"epoch": epoch, "train_loss": round(total_loss / len(order), 4)}
        if validation is not None:
            logits = predict_logits(model, validation[0], device)
            targets = torch.from_numpy(targets_for(validation[1], config.num_outputs))
            val_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(logits), targets))
            record["val_loss"] = round(val_loss, 4)
            record["val_auroc"] = round(auroc(validation[1] > 0, logits.max(axis=1)), 4)
            if val_loss < best["loss"]:
                best = {"loss": val_loss, "epoch": epoch, "state": _cpu_state(model)}
        history.append(record)
        if progress:
            progress((epoch + 1) * steps_per_epoch, epochs * steps_per_epoch, record)
        if checkpoint:
            _save_checkpoint(
                checkpoint,
                model,
                optimizer,
                scheduler,
                generator,
                rng,
                history,
                best,
                epoch,
                time.monotonic() - started,
                fingerprint,
            )
        if validation is not None and epoch - best["epoch"] >= config.patience:
            stopped = f"early stop: no better validation loss for {config.patience} epochs"
            break
        if deadline is not None and time.monotonic() >= deadline:
            stopped = "time limit (--max-minutes) reached"
            break

    if validation is not None and best["state"] is not None:
        model.load_state_dict(best["state"])
    logits = (
        predict_logits(model, validation[0], device)
        if validation is not None
        else np.zeros((0, config.num_outputs), np.float32)
    )
    model.cpu().eval()
    return FitResult(
        model=model,
        validation_logits=logits,
        history=history,
        best_epoch=best["epoch"] if validation is not None else epochs - 1,
        seconds=round(time.monotonic() - started, 1),
        stopped=stopped,
    )


def _cpu_state(model: nn.Module) -> dict:
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


def _fingerprint(config: TrainConfig, train, validation, epochs: int) -> str:
    """What a checkpoint is of: the settings that shape training and the data's identity."""
    import hashlib
    import json

    settings = config.to_card()
    for volatile in ("max_minutes", "threads", "device"):
        settings.pop(volatile)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(str(epochs).encode())
    for images, labels in (train, validation or (np.zeros(0), np.zeros(0))):
        digest.update(np.ascontiguousarray(labels).tobytes())
        digest.update(str(images.shape).encode())
        if len(images):
            digest.update(np.ascontiguousarray(images[:: max(1, len(images) // 16)]).tobytes())
    return digest.hexdigest()


def _save_checkpoint(
    path, model, optimizer, scheduler, generator, rng, history, best, epoch, seconds, fingerprint
):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "history": history,
            "best": best,
            "epoch": epoch,
            "seconds": seconds,
            "fingerprint": fingerprint,
        },
        temporary,
    )
    temporary.replace(path)
