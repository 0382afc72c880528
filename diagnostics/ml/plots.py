"""ROC curves and confusion matrices drawn as PNG with Pillow (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .metrics import roc_curve

BLUE = (31, 95, 168)
GREY = (150, 150, 150)
DARK = (30, 30, 30)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # older Pillow
        return ImageFont.load_default()


def draw_roc(path: Path, labels, scores, *, title: str, auc: float, point=None) -> None:
    """ROC curve with the chance diagonal and, optionally, the operating point (fpr, tpr)."""
    size, margin = 480, 60
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    plot = size - 2 * margin

    def xy(fpr: float, tpr: float) -> tuple[float, float]:
        return margin + fpr * plot, size - margin - tpr * plot

    draw.rectangle([margin, margin, size - margin, size - margin], outline=DARK)
    for tick in np.linspace(0, 1, 6):
        x, y = xy(tick, tick)
        draw.line([x, size - margin, x, size - margin + 5], fill=DARK)
        draw.line([margin - 5, y, margin, y], fill=DARK)
        draw.text((x - 8, size - margin + 8), f"{tick:.1f}", fill=DARK, font=_font(12))
        draw.text((margin - 32, y - 7), f"{tick:.1f}", fill=DARK, font=_font(12))
    draw.line([xy(0, 0), xy(1, 1)], fill=GREY, width=1)
    fpr, tpr = roc_curve(np.asarray(labels), np.asarray(scores))
    draw.line([xy(f, t) for f, t in zip(fpr, tpr, strict=True)], fill=BLUE, width=3)
    if point is not None:
        x, y = xy(*point)
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], outline=(200, 40, 40), width=3)
    draw.text((margin, 18), f"{title}  AUROC {auc:.3f}", fill=DARK, font=_font(16))
    draw.text((size / 2 - 60, size - 26), "1 - specificity", fill=DARK, font=_font(13))
    draw.text((6, margin - 22), "sensitivity", fill=DARK, font=_font(13))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def draw_confusion(path: Path, confusion: dict, *, negative: str, positive: str) -> None:
    """2×2 confusion matrix: rows are the truth, columns the prediction."""
    cell, left, top = 130, 150, 80
    image = Image.new("RGB", (left + 2 * cell + 20, top + 2 * cell + 20), "white")
    draw = ImageDraw.Draw(image)
    cells = [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]
    peak = max(max(row) for row in cells) or 1
    for r, row in enumerate(cells):
        for c, value in enumerate(row):
            shade = int(235 - 160 * value / peak)
            box = [left + c * cell, top + r * cell, left + (c + 1) * cell, top + (r + 1) * cell]
            draw.rectangle(box, fill=(shade, shade + 10 if shade < 245 else 255, 255), outline=DARK)
            colour = "white" if shade < 140 else DARK
            draw.text(
                (box[0] + cell / 2 - 15, box[1] + cell / 2 - 10),
                str(value),
                fill=colour,
                font=_font(20),
            )
    for i, name in enumerate((negative, positive)):
        draw.text((left + i * cell + 10, top - 24), name, fill=DARK, font=_font(14))
        draw.text((10, top + i * cell + cell / 2 - 8), name, fill=DARK, font=_font(14))
    draw.text((left, 12), "predicted", fill=DARK, font=_font(14))
    draw.text((10, top - 24), "truth", fill=DARK, font=_font(14))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
