"""Small synthetic labelled image sets for training tests (the real data sets are not in CI)."""

from pathlib import Path

import numpy as np
from PIL import Image


def make_class_folders(root: Path, per_class: int = 24, size: int = 48, seed: int = 0) -> Path:
    """``normal`` (noise) and ``lesion`` (noise plus a bright disc) PNGs, two films per patient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for label in ("normal", "lesion"):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.normal(90, 20, (size, size))
            if label == "lesion":
                cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
                image[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] += 110
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            patient = f"person{i // 2}{label}"
            Image.fromarray(pixels).save(folder / f"{patient}_{label}_{i}.png")
    return root
