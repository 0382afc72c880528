"""The model registry: ``AIModel`` rows kept in step with ``ML_WEIGHTS_DIR``.

Every card under ``ml_weights/<name>/<version>/`` becomes one row, its weights checked against
the card's sha256 (a missing file makes it *unavailable*, a different file *invalid*). A new
model that is available starts active; the administrators activate and deactivate models in the
admin afterwards. Nothing here imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from diagnostics.ml.card import ModelCard, discover
from diagnostics.ml.errors import WeightsError
from diagnostics.models import AIModel

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    models: list[AIModel] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def card_state(card: ModelCard) -> tuple[str, str]:
    """(state, problem) of a card's weights: the sha256 is checked here."""
    try:
        card.verify_weights()
    except WeightsError as exc:
        if card.data.get("sha256") is None:
            return AIModel.State.UNAVAILABLE, str(exc)
        return AIModel.State.INVALID, str(exc)
    return AIModel.State.AVAILABLE, ""


def registry_sync(*, root: Path | None = None, activate: str = "") -> SyncReport:
    """Register or refresh every model version under ``root`` (default ``ML_WEIGHTS_DIR``).

    ``activate`` (``name@version``) activates that version after the check, when available.
    Rows whose folder is gone stay (runs refer to them) but become invalid and inactive.
    """
    root = Path(root or settings.ML_WEIGHTS_DIR)
    cards, problems = discover(root)
    report = SyncReport(problems=list(problems))
    now = timezone.now()
    seen = set()
    with transaction.atomic():
        for card in cards:
            state, problem = card_state(card)
            row, created = AIModel.objects.select_for_update().get_or_create(
                name=card.name,
                version=card.version,
                defaults={"active": state == AIModel.State.AVAILABLE, "folder": str(card.folder)},
            )
            row.title = card.title[:200]
            row.card = card.data
            row.folder = str(card.folder)
            row.weights_sha256 = card.data.get("sha256") or ""
            row.state = state
            row.problem = problem
            row.synced_at = now
            if state != AIModel.State.AVAILABLE:
                row.active = False
            elif activate and card.key == activate:
                row.active = True
            row.save()
            seen.add(row.pk)
            report.models.append(row)
            if state == AIModel.State.INVALID:
                report.problems.append(problem)
        for row in AIModel.objects.exclude(pk__in=seen).select_for_update():
            row.state = AIModel.State.INVALID
            row.problem = f"{row.key}: its folder is no longer under {root}."
            row.active = False
            row.synced_at = now
            row.save()
    return report


def model_mark_invalid(*, model: AIModel, problem: str) -> None:
    """A worker found the weights altered or missing: the admin shows it, ingest stops using it."""
    AIModel.objects.filter(pk=model.pk).update(
        state=AIModel.State.INVALID if model.weights_sha256 else AIModel.State.UNAVAILABLE,
        problem=problem,
        active=False,
        synced_at=timezone.now(),
    )
    logger.error("Model %s deactivated: %s", model.key, problem)


def model_resolve(spec: str) -> AIModel | None:
    """``name`` (its active version, else its newest) or ``name@version``."""
    name, _, version = spec.strip().partition("@")
    rows = AIModel.objects.filter(name=name)
    if version:
        return rows.filter(version=version).first()
    return rows.filter(active=True).first() or rows.first()


def model_card(model: AIModel) -> ModelCard:
    return ModelCard(model.card, Path(model.folder))
