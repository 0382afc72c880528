"""The registry follows ml_weights/: cards, sha256 check, availability, activation."""

import io
import json

import pytest
from django.core.management import call_command

from diagnostics.models import AIModel
from diagnostics.registry import model_resolve, registry_sync

pytestmark = pytest.mark.django_db


def test_sync_registers_a_model_version_with_its_card_and_activates_it(weights_root):
    report = registry_sync(root=weights_root)
    (model,) = report.models
    assert (model.name, model.version) == ("lesion", "1.0.0")
    assert model.state == AIModel.State.AVAILABLE and model.active
    assert model.card["labels"] == ["lesion"]
    assert len(model.weights_sha256) == 64
    assert report.problems == []


def test_sync_is_idempotent_and_keeps_a_deactivated_model_inactive(weights_root):
    registry_sync(root=weights_root)
    AIModel.objects.update(active=False)
    registry_sync(root=weights_root)
    assert AIModel.objects.count() == 1
    assert AIModel.objects.get().active is False


def test_a_sha256_mismatch_makes_the_model_invalid_inactive_and_says_why(weights_root):
    weights = weights_root / "lesion" / "1.0.0" / "weights.pt"
    weights.write_bytes(weights.read_bytes() + b"tampered")
    report = registry_sync(root=weights_root)
    model = AIModel.objects.get()
    assert model.state == AIModel.State.INVALID and not model.active
    assert "sha256" in model.problem and "altered or replaced" in model.problem
    assert report.problems == [model.problem]


def test_missing_weights_make_the_model_invalid(weights_root):
    (weights_root / "lesion" / "1.0.0" / "weights.pt").unlink()
    registry_sync(root=weights_root)
    model = AIModel.objects.get()
    assert model.state == AIModel.State.INVALID
    assert "is missing" in model.problem


def test_a_card_without_weights_is_unavailable_like_chest_pathologies(weights_root):
    folder = weights_root / "lesion" / "1.0.0"
    card = json.loads((folder / "card.json").read_text())
    card["sha256"] = None
    (folder / "card.json").write_text(json.dumps(card))
    registry_sync(root=weights_root)
    model = AIModel.objects.get()
    assert model.state == AIModel.State.UNAVAILABLE and not model.active
    assert "no weights are installed" in model.problem


def test_shipped_models_register_and_chest_pathologies_is_unavailable(settings):
    report = registry_sync(root=settings.BASE_DIR / "ml_weights")
    states = {m.key: (m.state, m.active) for m in report.models}
    assert states["pneumonia@1.0.0"] == ("available", True)
    assert states["scoliosis@1.0.0"] == ("available", True)
    assert states["chest-pathologies@1.0.0"] == ("unavailable", False)


def test_a_removed_folder_leaves_the_row_invalid(weights_root):
    import shutil

    registry_sync(root=weights_root)
    shutil.rmtree(weights_root / "lesion")
    registry_sync(root=weights_root)
    model = AIModel.objects.get()
    assert model.state == AIModel.State.INVALID and not model.active
    assert "no longer" in model.problem


def test_models_command_lists_validates_and_syncs(weights_root):
    out = io.StringIO()
    call_command("models", "--weights-dir", str(weights_root), stdout=out)
    assert "lesion@1.0.0" in out.getvalue() and "Registry: 1 model version(s)" in out.getvalue()
    assert AIModel.objects.filter(name="lesion", active=True).exists()


def test_model_resolve_by_name_or_name_at_version(ai_model):
    assert model_resolve("lesion") == ai_model
    assert model_resolve("lesion@1.0.0") == ai_model
    assert model_resolve("lesion@9.9.9") is None
    assert model_resolve("nothing") is None
