"""The models shipped in ml_weights/: valid cards, intact weights within 10 MB, honest figures."""

from pathlib import Path

import pytest

from diagnostics.ml.card import discover
from diagnostics.ml.predict import load

WEIGHTS = Path(__file__).resolve().parents[2] / "ml_weights"
CARDS, PROBLEMS = discover(WEIGHTS)
TRAINED = [card for card in CARDS if card.data.get("weights_shipped")]


def test_every_card_in_ml_weights_is_valid():
    assert PROBLEMS == []
    assert {card.name for card in CARDS} >= {"chest-pathologies", "pneumonia", "scoliosis"}


@pytest.mark.parametrize("card", TRAINED, ids=lambda card: card.key)
def test_shipped_weights_match_their_hash_fit_their_network_and_stay_small(card):
    card.verify_weights()
    assert card.weights_path.stat().st_size <= 10 * 1024 * 1024
    model = load(card.folder)
    assert model.card.key == card.key
    for figure in card.data["figures"].values():
        assert (card.folder / figure).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("card", TRAINED, ids=lambda card: card.key)
def test_shipped_cards_cite_their_data_and_state_figures_with_intervals(card):
    assert card.data["data"]["licence"] == "CC BY 4.0"
    assert "doi:" in card.data["data"]["citation"]
    for metrics in card.data["metrics"]["per_label"].values():
        for name in ("accuracy", "sensitivity", "specificity", "auroc"):
            low, high = metrics[name]["ci95"]
            assert low <= metrics[name]["value"] <= high


def test_pneumonia_meets_its_acceptance_figures_on_patient_disjoint_validation():
    card = next(c for c in TRAINED if c.name == "pneumonia")
    metrics = card.data["metrics"]["per_label"]["pneumonia"]
    assert "by patient" in card.data["metrics"]["method"]
    assert metrics["auroc"]["value"] >= 0.97
    assert metrics["sensitivity"]["value"] >= 0.95
    assert metrics["specificity"]["value"] >= 0.85
    assert card.applies_to["age_years"] == {"min": 0, "max": 10}
    assert card.data["training"]["config"]["horizontal_flip"] is False


def test_scoliosis_meets_its_cross_validated_accuracy_and_says_what_it_does_not_cover():
    card = next(c for c in TRAINED if c.name == "scoliosis")
    assert card.data["metrics"]["mean_accuracy"]["value"] >= 0.90
    assert len(card.data["metrics"]["folds"]) == 5
    assert any("spondylolisthesis" in line.lower() for line in card.data["limitations"])


def _inputs():
    import io

    import numpy as np
    from PIL import Image
    from pydicom.data import get_testdata_file

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    rng = np.random.default_rng(0)
    return {
        "dicom-16bit-signed": get_testdata_file("CT_small.dcm"),
        "dicom-rgb-jpeg": get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"),
        "dicom-multiframe-rle": get_testdata_file("SC_rgb_rle_16bit_2frame.dcm"),
        "png-16bit-large": png((rng.random((3000, 2500)) * 65535).astype(np.uint16)),
        "png-rgba-tiny": png((rng.random((5, 7, 4)) * 255).astype(np.uint8)),
    }


@pytest.mark.parametrize("card", TRAINED, ids=lambda card: card.key)
def test_shipped_models_accept_any_bit_depth_colour_and_size(card):
    from diagnostics.ml.predict import predict

    model = load(card.folder)
    for name, source in _inputs().items():
        prediction = predict(model, source)
        for finding in prediction.findings:
            assert 0.0 <= finding.probability <= 1.0, name
