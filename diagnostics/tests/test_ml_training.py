"""train_model → card → predict/evaluate_model: the card's figures are reproducible."""

import json

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from diagnostics.ml.card import ModelCard, sha256_of
from diagnostics.ml.data import from_class_folders, load_arrays, split_by_patient
from diagnostics.ml.images import read_image
from diagnostics.ml.predict import gradcam, load, predict, regions
from diagnostics.ml.preprocess import Preprocessing
from diagnostics.ml.train import TrainConfig, fit

from .ml_fixtures import make_class_folders

TRAIN_ARGS = [
    "--classes",
    "normal,lesion",
    "--category",
    "chest_xray",
    "--view",
    "PA",
    "--size",
    "32x32",
    "--epochs",
    "6",
    "--threads",
    "1",
    "--seed",
    "3",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    data = make_class_folders(root / "data")
    weights = root / "weights"
    call_command(
        "train_model",
        "demo",
        "--data",
        str(data),
        "--weights-dir",
        str(weights),
        "--work-dir",
        str(root / "work"),
        *TRAIN_ARGS,
        stdout=open(root / "train.log", "w"),
    )
    return data, weights / "demo" / "1.0.0"


def test_training_writes_a_valid_card_with_weights_figures_and_validation_list(trained):
    _data, folder = trained
    card = ModelCard.load(folder)
    assert card.labels == ["lesion"]
    assert card.data["sha256"] == sha256_of(folder / "weights.pt")
    assert (folder / "weights.pt").stat().st_size < 10_000_000
    assert (folder / card.data["figures"]["roc"]).read_bytes()[:4] == b"\x89PNG"
    assert (folder / card.data["figures"]["confusion"]).read_bytes()[:4] == b"\x89PNG"
    metrics = card.data["metrics"]["per_label"]["lesion"]
    for name in ("accuracy", "sensitivity", "specificity", "auroc"):
        assert len(metrics[name]["ci95"]) == 2
    assert set(metrics["calibration"]) == {"ece_before", "ece_after"}
    assert card.temperature > 0
    assert card.data["training"]["config"]["horizontal_flip"] is False


def test_validation_split_is_disjoint_by_patient(trained):
    data, folder = trained
    validation = (folder / "validation.csv").read_text().splitlines()[1:]
    validation_patients = {line.split("/")[1].split("_")[0] for line in validation}
    samples, _ = from_class_folders(data, ["normal", "lesion"])
    train_patients = {s.patient for s in samples} - validation_patients
    assert validation_patients and train_patients
    assert not validation_patients & train_patients


def test_predict_over_the_validation_list_reproduces_the_cards_metrics(trained, capsys):
    data, folder = trained
    call_command(
        "evaluate_model",
        "demo@1.0.0",
        "--data",
        str(data),
        "--list",
        "validation",
        "--weights-dir",
        str(folder.parent.parent),
        "--bootstrap",
        "50",
    )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = ModelCard.load(folder).data["metrics"]["per_label"]["lesion"]
    measured = report["per_label"]["lesion"]
    assert measured["confusion"] == card["confusion"]
    for name in ("accuracy", "sensitivity", "specificity", "auroc"):
        assert measured[name]["value"] == card[name]["value"]


def test_predict_gives_calibrated_findings_and_a_heatmap_over_the_original_image(trained):
    data, folder = trained
    model = load(folder)
    path = sorted((data / "lesion").iterdir())[0]
    prediction = predict(model, path)
    (finding,) = prediction.findings
    expected = 1 / (1 + np.exp(-prediction.logits[0] / model.card.temperature))
    assert finding.probability == pytest.approx(expected, abs=1e-6)
    assert finding.positive == (finding.probability >= model.card.thresholds["lesion"])
    image = read_image(path)
    heatmap = gradcam(model, image, "lesion")
    assert heatmap.shape == image.shape
    assert 0 <= heatmap.min() and heatmap.max() <= 1
    for box in regions(heatmap, 0.5):
        assert 0 <= box["x"] < image.shape[1] and 0 <= box["y"] < image.shape[0]


def test_altered_weights_are_refused_at_load(trained, tmp_path):
    import shutil

    from diagnostics.ml.errors import WeightsError

    _data, folder = trained
    copy = tmp_path / "demo" / "1.0.0"
    shutil.copytree(folder, copy)
    with (copy / "weights.pt").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(WeightsError, match="altered or replaced"):
        load(copy)


def test_an_interrupted_run_resumes_to_the_same_network(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=8, size=24)
    samples, names = from_class_folders(data, ["normal", "lesion"])
    images, labels, _ = load_arrays(samples, Preprocessing(size=(24, 24)))
    config = TrainConfig(
        name="t", version="1", class_names=names, size=(24, 24), epochs=3, threads=1, batch_size=8
    )
    straight = fit(config, (images, labels), None)
    checkpoint = tmp_path / "run.ckpt"
    stopped = fit(config, (images, labels), None, checkpoint=checkpoint, deadline=0)
    assert stopped.stopped == "time limit (--max-minutes) reached"
    assert len(stopped.history) == 1
    resumed = fit(config, (images, labels), None, checkpoint=checkpoint)
    assert len(resumed.history) == 3
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_split_by_patient_keeps_each_patients_films_together(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=10, size=16)
    samples, _ = from_class_folders(data, ["normal", "lesion"])
    train, validation = split_by_patient(samples, 0.3, seed=1)
    assert {s.patient for s in train}.isdisjoint({s.patient for s in validation})
    assert {s.label for s in validation} == {0, 1}


def test_train_model_explains_what_an_unknown_model_needs(tmp_path):
    with pytest.raises(CommandError, match="give --classes"):
        call_command("train_model", "mystery", "--data", str(tmp_path))


def test_train_model_refuses_to_overwrite_a_version(trained):
    data, folder = trained
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "train_model",
            "demo",
            "--data",
            str(data),
            "--weights-dir",
            str(folder.parent.parent),
            *TRAIN_ARGS,
        )


def test_train_model_reads_a_csv_of_images_and_labels(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=8, size=24)
    rows = ["image,label,patient_id"]
    for label in ("normal", "lesion"):
        for i, path in enumerate(sorted((data / label).iterdir())):
            rows.append(f"{label}/{path.name},{label},p{i // 2}{label}")
    listing = data / "labels.csv"
    listing.write_text("\n".join(rows) + "\n")
    weights = tmp_path / "weights"
    call_command(
        "train_model",
        "fromcsv",
        "--data",
        str(listing),
        "--weights-dir",
        str(weights),
        "--work-dir",
        str(tmp_path / "work"),
        *TRAIN_ARGS,
        "--epochs",
        "1",
        stdout=open(tmp_path / "log", "w"),
    )
    card = ModelCard.load(weights / "fromcsv" / "1.0.0")
    assert card.data["training"]["images"] == {"normal": 8, "lesion": 8}
    validation = (card.folder / "validation.csv").read_text().splitlines()[1:]
    assert validation and all(
        line.split(",")[0].split("/")[0] in {"normal", "lesion"} for line in validation
    )
