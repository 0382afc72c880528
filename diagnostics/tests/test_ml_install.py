"""chest-pathologies: weights are installed by an operator, checked by hash and by shape."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from diagnostics.ml.card import ModelCard, sha256_of
from diagnostics.ml.images import GreyImage
from diagnostics.ml.nets import build
from diagnostics.ml.predict import gradcam, load, predict

pytestmark = pytest.mark.django_db  # the commands also update the model registry

SHIPPED = Path(__file__).resolve().parents[2] / "ml_weights" / "chest-pathologies" / "1.0.0"


@pytest.fixture
def weights_dir(tmp_path):
    target = tmp_path / "weights" / "chest-pathologies" / "1.0.0"
    shutil.copytree(SHIPPED, target)
    return tmp_path / "weights"


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("xrv") / "densenet.pt"
    torch.manual_seed(0)
    torch.save(build("xrv-densenet121", 18).state_dict(), path)
    return path


def test_the_shipped_card_says_the_model_is_unavailable_until_weights_arrive(weights_dir):
    card = ModelCard.load(weights_dir / "chest-pathologies" / "1.0.0")
    assert card.data["sha256"] is None
    assert not card.has_weights
    assert len(card.labels) == 18
    assert "research" in card.data["data"]["licence"]


def test_models_command_lists_it_as_unavailable(weights_dir, capsys):
    call_command("models", "--weights-dir", str(weights_dir))
    assert "unavailable: no weights installed" in capsys.readouterr().out


def test_import_weights_installs_a_state_dict_and_the_model_predicts(
    weights_dir, state_dict_file, capsys
):
    digest = sha256_of(state_dict_file)
    call_command(
        "import_weights",
        "chest-pathologies",
        str(state_dict_file),
        "--sha256",
        digest,
        "--weights-dir",
        str(weights_dir),
    )
    folder = weights_dir / "chest-pathologies" / "1.0.0"
    card = ModelCard.load(folder)
    assert card.data["sha256"] == sha256_of(folder / "weights.pt")
    assert card.data["training"]["source_sha256"] == digest
    model = load(folder)
    image = GreyImage(np.random.default_rng(0).random((300, 260), dtype=np.float32), "png")
    prediction = predict(model, image)
    assert [f.label for f in prediction.findings] == card.labels
    assert gradcam(model, image, "Effusion").shape == (300, 260)


def test_import_weights_refuses_a_file_whose_hash_differs(weights_dir, state_dict_file):
    with pytest.raises(CommandError, match="not the one you meant"):
        call_command(
            "import_weights",
            "chest-pathologies",
            str(state_dict_file),
            "--sha256",
            "0" * 64,
            "--weights-dir",
            str(weights_dir),
        )
    assert not (weights_dir / "chest-pathologies" / "1.0.0" / "weights.pt").exists()


def test_import_weights_refuses_weights_of_another_shape(weights_dir, tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save(build("xrv-densenet121", 14).state_dict(), wrong)
    with pytest.raises(CommandError, match="does not fit xrv-densenet121 with 18 outputs"):
        call_command(
            "import_weights",
            "chest-pathologies",
            str(wrong),
            "--sha256",
            sha256_of(wrong),
            "--weights-dir",
            str(weights_dir),
        )


def test_fetch_weights_without_internet_says_to_use_import_weights(weights_dir, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CommandError, match="use import_weights"):
        call_command(
            "fetch_weights",
            "chest-pathologies",
            "--sha256",
            "0" * 64,
            "--weights-dir",
            str(weights_dir),
        )
