"""Preprocessing, described by the model card and applied identically in training and predict.

1. Read the image as grey in [0, 1] (:mod:`diagnostics.ml.images`; DICOM windowing ``voi``).
2. Resize to ``size`` (height, width) ignoring the aspect ratio, bilinear with antialiasing.
3. Standardise per image: subtract its mean, divide by its standard deviation. This makes the
   model indifferent to exposure, bit depth and the DICOM window, which vary between hospitals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DESCRIPTION = (
    "grey in [0, 1] (DICOM: modality LUT, then the header's VOI LUT or first window, else the "
    "full range; MONOCHROME1 inverted; colour converted to grey); resize to {h}x{w} "
    "(height x width) ignoring aspect, bilinear with antialiasing; per-image z-score"
)


@dataclass(frozen=True)
class Preprocessing:
    size: tuple[int, int]  # (height, width)
    resize_mode: str = "ignore-aspect-bilinear"
    normalization: str = "per-image-zscore"
    dicom_windowing: str = "voi"

    @classmethod
    def from_card(cls, data: dict) -> Preprocessing:
        return cls(
            size=(int(data["size"][0]), int(data["size"][1])),
            resize_mode=data.get("resize_mode", cls.resize_mode),
            normalization=data.get("normalization", cls.normalization),
            dicom_windowing=data.get("dicom_windowing", cls.dicom_windowing),
        )

    def to_card(self) -> dict:
        data = asdict(self)
        data["size"] = list(self.size)
        data["description"] = DESCRIPTION.format(h=self.size[0], w=self.size[1])
        return data

    def resize(self, grey: np.ndarray) -> np.ndarray:
        if self.resize_mode == "center-crop-square-bilinear":
            grey = center_crop_square(grey)
        elif self.resize_mode != "ignore-aspect-bilinear":
            raise ValueError(f"Unknown resize mode {self.resize_mode!r}.")
        return resize_grey(grey, self.size)

    def normalize(self, batch):
        """(N, 1, H, W) tensor in [0, 1] → the network's input scale."""
        if self.normalization == "per-image-zscore":
            return standardize(batch)
        if self.normalization == "xrv-1024":  # TorchXRayVision: [0, 1] → [-1024, 1024]
            return batch * 2048.0 - 1024.0
        raise ValueError(f"Unknown normalization {self.normalization!r}.")


def center_crop_square(grey: np.ndarray) -> np.ndarray:
    height, width = grey.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return grey[top : top + side, left : left + side]


def resize_grey(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a grey float image to (height, width), ignoring its aspect ratio."""
    from PIL import Image

    height, width = size
    if grey.shape == (height, width):
        return grey.astype(np.float32, copy=False)
    image = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), np.float32)


def standardize(batch):
    """Per-image z-score of a (N, 1, H, W) tensor or array."""
    mean = batch.mean(axis=(-2, -1), keepdims=True) if isinstance(batch, np.ndarray) else None
    if mean is not None:
        std = batch.std(axis=(-2, -1), keepdims=True)
        return (batch - mean) / (std + 1e-6)
    mean = batch.mean(dim=(-2, -1), keepdim=True)
    std = batch.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (batch - mean) / (std + 1e-6)
