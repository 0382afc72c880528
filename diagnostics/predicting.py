"""``POST /api/v1/predict``: one image in, the model's calibrated answer out, synchronously,
through the same ``ml.predict()`` and Grad-CAM as the worker. Nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from diagnostics.models import AIModel
from diagnostics.registry import model_card, model_mark_invalid, model_resolve
from diagnostics.services import age_years


class PredictError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class ImageFacts:
    """What the file says about itself (DICOM only; a PNG or JPEG says nothing)."""

    category: str | None = None
    view_position: str | None = None
    age_years: float | None = None


@dataclass
class Gate:
    mismatches: list[str] = field(default_factory=list)  # known facts the card excludes
    unknown: list[str] = field(default_factory=list)  # facts the file does not tell


def image_facts(data: bytes) -> ImageFacts:
    from studies.dicom import parse
    from studies.dicom.category import category_of, normalize_view_position
    from studies.dicom.errors import DicomError

    if data[128:132] != b"DICM":
        return ImageFacts()
    try:
        header = parse.parse_instance(data, default_zone=settings.TIME_ZONE)
    except DicomError:
        return ImageFacts()  # reading the pixels reports the real problem
    when = header.study_datetime.date() if header.study_datetime else None
    category = category_of(header)
    return ImageFacts(
        category=category if category and category != "other" else None,
        view_position=normalize_view_position(header.view_position) or None,
        age_years=age_years(header.patient.birth_date, when),
    )


def applicability(model: AIModel, facts: ImageFacts) -> Gate:
    rules = model_card(model).applies_to
    gate = Gate()
    categories = ", ".join(rules["categories"])
    if facts.category is None:
        gate.unknown.append(_("category unknown; model for %(allowed)s") % {"allowed": categories})
    elif facts.category not in rules["categories"]:
        gate.mismatches.append(
            _("category %(value)s; model for %(allowed)s")
            % {"value": facts.category, "allowed": categories}
        )
    views = [v.upper() for v in rules.get("view_positions") or []]
    if views:
        allowed = ", ".join(views)
        if facts.view_position is None:
            gate.unknown.append(_("view unknown; model for %(allowed)s") % {"allowed": allowed})
        elif facts.view_position.upper() not in views:
            gate.mismatches.append(
                _("view %(value)s; model for %(allowed)s")
                % {"value": facts.view_position, "allowed": allowed}
            )
    reason = model_card(model).not_applicable_reason(
        category=rules["categories"][0],
        view_position=views[0] if views else None,
        age_years=facts.age_years,
    )
    if reason:
        (gate.unknown if facts.age_years is None else gate.mismatches).append(reason)
    return gate


def confidence_score(probabilities: list[float]) -> float:
    """Mean over the labels of max(p, 1 − p): 1 = decided every way, 0.5 = a coin toss."""
    if not probabilities:
        return 0.0
    return round(sum(max(p, 1 - p) for p in probabilities) / len(probabilities), 4)


def predict_image(*, data: bytes, model_spec: str = "") -> dict:
    from diagnostics.ml.errors import CardError, ImageReadError, WeightsError

    explicit = bool(model_spec.strip())
    spec = model_spec.strip() or settings.PREDICT_DEFAULT_MODEL
    model = model_resolve(spec)
    if model is None:
        known = ", ".join(m.key for m in AIModel.objects.all()) or _("none registered")
        raise PredictError(
            400,
            "unknown_model",
            _("No model %(model)s; known: %(known)s.") % {"model": spec, "known": known},
        )
    if not model.is_available:
        raise PredictError(
            409,
            "model_unavailable",
            _("The model %(model)s is unavailable: %(problem)s")
            % {
                "model": model.key,
                "problem": _("no weights are installed (an administrator installs them).")
                if model.state == AIModel.State.UNAVAILABLE
                else model.problem,
            },
        )
    if not data:
        raise PredictError(400, "invalid_image", _("The file is empty."))
    gate = applicability(model, image_facts(data))
    if gate.mismatches and not explicit:
        raise PredictError(
            422,
            "not_applicable",
            _(
                "The default model %(model)s does not apply to this image: %(reasons)s. Name a "
                "model explicitly to run it anyway."
            )
            % {"model": model.key, "reasons": "; ".join(gate.mismatches)},
            {"reasons": gate.mismatches},
        )
    warnings = [
        _("The model may not apply: %(reason)s") % {"reason": r}
        for r in gate.mismatches + gate.unknown
    ]
    try:
        from diagnostics import inference

        loaded = inference.loaded_model(
            folder=model.folder, sha256=model.weights_sha256, key=model.key
        )
        analysis = inference.analyse(loaded, data, draw=False)
    except (WeightsError, CardError) as exc:
        model_mark_invalid(model=model, problem=str(exc))
        raise PredictError(409, "model_unavailable", str(exc)) from None
    except ImageReadError as exc:
        raise PredictError(400, "invalid_image", str(exc)) from None
    return {
        "status": "success",
        "prediction": {
            "diagnoses": [
                {
                    "condition": r.label,
                    "probability": round(r.probability, 4),
                    "positive": r.positive,
                    "severity": r.severity,
                    "regions": r.regions,
                }
                for r in analysis.labels
            ],
            "confidence_score": confidence_score([r.probability for r in analysis.labels]),
            "processing_time_ms": analysis.total_ms,
        },
        "metadata": {
            "model": model.name,
            "model_version": model.version,
            "timestamp": timezone.now().isoformat(),
            "warnings": warnings,
            "disclaimer": str(_("AI result — decision support, not a diagnosis")),
        },
    }
