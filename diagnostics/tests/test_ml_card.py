import copy
import json

import pytest

from diagnostics.ml.card import ModelCard, discover, sha256_of, validate
from diagnostics.ml.errors import CardError, WeightsError

CARD = {
    "card_version": 1,
    "name": "demo",
    "version": "1.0.0",
    "task": "binary",
    "title": "Demo",
    "labels": ["pneumonia"],
    "negative_label": "normal",
    "architecture": "resnet-s",
    "weights_file": "weights.pt",
    "sha256": None,
    "preprocessing": {
        "size": [32, 32],
        "resize_mode": "ignore-aspect-bilinear",
        "normalization": "per-image-zscore",
        "dicom_windowing": "voi",
        "description": "resize to 32x32",
    },
    "temperature": 1.5,
    "thresholds": {"pneumonia": 0.4},
    "applies_to": {
        "categories": ["chest_xray"],
        "view_positions": ["PA", "AP"],
        "age_years": {"min": 0, "max": 10},
    },
    "metrics": {},
    "training": {},
    "data": {"citation": "Kermany et al. 2018", "licence": "CC BY 4.0"},
    "limitations": [],
}


def _write(tmp_path, data, name="demo", version="1.0.0"):
    folder = tmp_path / name / version
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps(data))
    return folder


def test_a_complete_card_is_valid():
    assert validate(CARD) == []


def test_validation_names_the_field_that_is_wrong():
    card = copy.deepcopy(CARD)
    card["temperature"] = 0
    del card["data"]["licence"]
    problems = " ".join(validate(card))
    assert "temperature" in problems
    assert "licence" in problems


def test_every_label_needs_a_threshold():
    card = copy.deepcopy(CARD)
    card["thresholds"] = {}
    assert validate(card) == ["thresholds: no threshold for pneumonia"]


def test_a_card_in_the_wrong_folder_is_refused(tmp_path):
    folder = _write(tmp_path, CARD, version="2.0.0")
    with pytest.raises(CardError, match="describes demo@1.0.0 but lies in demo/2.0.0"):
        ModelCard.load(folder)


def test_weights_are_checked_against_the_sha256(tmp_path):
    card_data = copy.deepcopy(CARD)
    folder = _write(tmp_path, card_data)
    (folder / "weights.pt").write_bytes(b"weights")
    card_data["sha256"] = sha256_of(folder / "weights.pt")
    (folder / "card.json").write_text(json.dumps(card_data))
    card = ModelCard.load(folder)
    card.verify_weights()
    (folder / "weights.pt").write_bytes(b"weights, altered")
    with pytest.raises(WeightsError, match="altered or replaced"):
        card.verify_weights()


def test_a_model_without_weights_says_they_are_not_installed(tmp_path):
    card = ModelCard.load(_write(tmp_path, CARD))
    assert not card.has_weights
    with pytest.raises(WeightsError, match="no weights are installed"):
        card.verify_weights()


@pytest.mark.parametrize(
    ("category", "view", "age", "reason"),
    [
        ("chest_xray", "PA", 4, None),
        ("chest_xray", "ap", 10.9, None),
        ("chest_xray", "PA", 54, "age 54; model for 0–10 years"),
        ("chest_xray", "PA", None, "age unknown; model for 0–10 years"),
        ("chest_xray", "LL", 4, "view LL; model for PA, AP"),
        ("spine_xray", "PA", 4, "category spine_xray; model for chest_xray"),
    ],
)
def test_applicability_says_why_a_model_does_not_apply(tmp_path, category, view, age, reason):
    card = ModelCard(CARD, tmp_path)
    assert card.not_applicable_reason(category=category, view_position=view, age_years=age) == (
        reason
    )


def test_discover_lists_valid_cards_and_reports_broken_ones(tmp_path):
    _write(tmp_path, CARD)
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "card.json").write_text("{not json")
    cards, problems = discover(tmp_path)
    assert [c.key for c in cards] == ["demo@1.0.0"]
    assert len(problems) == 1 and "not valid JSON" in problems[0]
