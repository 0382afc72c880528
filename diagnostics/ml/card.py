"""The model card: one versioned schema for training, the registry and ``manage.py models``.

A model version lives in ``ml_weights/<name>/<version>/`` as ``card.json`` beside its weights
file (and the ROC and confusion-matrix PNGs named in ``figures``). The JSON Schema is
``model_card.schema.json`` next to this module; :func:`validate` checks a card against it and
against the rules a schema cannot say (a threshold for every label, the folder matching the
name and version).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import CardError, WeightsError
from .preprocess import Preprocessing

CARD_VERSION = 1
CARD_FILE = "card.json"
SCHEMA_FILE = Path(__file__).with_name("model_card.schema.json")


@cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def validate(data: dict) -> list[str]:
    """Every problem with a card, as readable strings; empty when it is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(card)'}: {error.message}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        return problems
    missing = [label for label in data["labels"] if label not in data["thresholds"]]
    if missing:
        problems.append(f"thresholds: no threshold for {', '.join(missing)}")
    unknown = [label for label in data["thresholds"] if label not in data["labels"]]
    if unknown:
        problems.append(f"thresholds: {', '.join(unknown)} not among the labels")
    return problems


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    data: dict
    folder: Path

    # -- reading -------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: Path) -> ModelCard:
        folder = Path(folder)
        path = folder / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CardError(f"{path} is missing.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CardError(f"{path} is not valid JSON: {exc}") from None
        problems = validate(data)
        if problems:
            raise CardError(f"{path} is not a valid model card: " + "; ".join(problems))
        card = cls(data, folder)
        if folder.name != card.version or folder.parent.name != card.name:
            raise CardError(
                f"{path} describes {card.key} but lies in {folder.parent.name}/{folder.name}."
            )
        return card

    def save(self) -> None:
        problems = validate(self.data)
        if problems:
            raise CardError("Refusing to write an invalid model card: " + "; ".join(problems))
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, ensure_ascii=False, indent=2) + "\n"
        (self.folder / CARD_FILE).write_text(text, encoding="utf-8")

    # -- fields --------------------------------------------------------------------------
    name = property(lambda self: self.data["name"])
    version = property(lambda self: self.data["version"])
    title = property(lambda self: self.data["title"])
    labels = property(lambda self: list(self.data["labels"]))
    temperature = property(lambda self: float(self.data["temperature"]))
    thresholds = property(lambda self: {k: float(v) for k, v in self.data["thresholds"].items()})
    applies_to = property(lambda self: self.data["applies_to"])
    architecture = property(lambda self: self.data["architecture"])

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_card(self.data["preprocessing"])

    @property
    def weights_path(self) -> Path:
        return self.folder / self.data["weights_file"]

    @property
    def has_weights(self) -> bool:
        return self.data.get("sha256") is not None and self.weights_path.is_file()

    def figure_path(self, key: str) -> Path | None:
        name = self.data.get("figures", {}).get(key)
        return self.folder / name if name else None

    def verify_weights(self) -> None:
        """Raise :class:`WeightsError` unless the weights file exists and matches its sha256."""
        expected = self.data.get("sha256")
        if expected is None:
            raise WeightsError(
                f"{self.key}: no weights are installed (use manage.py import_weights)."
            )
        if not self.weights_path.is_file():
            raise WeightsError(f"{self.key}: weights file {self.weights_path} is missing.")
        actual = sha256_of(self.weights_path)
        if actual != expected:
            raise WeightsError(
                f"{self.key}: weights file {self.weights_path.name} has sha256 {actual}, "
                f"the card says {expected}; the file was altered or replaced."
            )

    # -- applicability -------------------------------------------------------------------
    def not_applicable_reason(
        self, *, category: str | None, view_position: str | None, age_years: float | None
    ) -> str | None:
        """Why this model must not run on such an image, or None when it applies."""
        rules = self.applies_to
        if category not in rules["categories"]:
            allowed = ", ".join(rules["categories"])
            return f"category {category or 'unknown'}; model for {allowed}"
        views = [v.upper() for v in rules.get("view_positions") or []]
        if views and (view_position or "").upper() not in views:
            return f"view {view_position or 'unknown'}; model for {', '.join(views)}"
        ages = rules.get("age_years") or {}
        low, high = ages.get("min"), ages.get("max")
        if low is not None or high is not None:
            span = f"{_age(low)}–{_age(high)} years"
            if age_years is None:
                return f"age unknown; model for {span}"
            whole = int(age_years)  # a child of 10 years and 6 months is 10
            if (low is not None and whole < low) or (high is not None and whole > high):
                return f"age {whole}; model for {span}"
        return None


def _age(value) -> str:
    if value is None:
        return "…"
    return str(int(value)) if float(value).is_integer() else str(value)


def discover(root: Path) -> tuple[list[ModelCard], list[str]]:
    """All model versions under ``root`` (``<name>/<version>/card.json``) and the problems found."""
    cards, problems = [], []
    root = Path(root)
    if not root.is_dir():
        return cards, [f"{root} does not exist."]
    for path in sorted(root.glob(f"*/*/{CARD_FILE}")):
        try:
            cards.append(ModelCard.load(path.parent))
        except CardError as exc:
            problems.append(str(exc))
    return cards, problems
