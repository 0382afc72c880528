"""Install operator-supplied weights into a model version: check the hash, the shape, record."""

from __future__ import annotations

from pathlib import Path

import torch

from .card import ModelCard, sha256_of
from .errors import WeightsError
from .nets import build


def install_weights(folder: Path, source: Path, expected_sha256: str) -> ModelCard:
    """Copy ``source`` into the model version in ``folder`` as a plain state dict.

    The file's sha256 must equal ``expected_sha256`` before anything is loaded from it. A file
    holding a whole pickled network (as TorchXRayVision publishes) is unpickled only after that
    check, and only its state dict is kept, so the worker later loads with ``weights_only``.
    The state dict must fit the card's architecture. The card then records the installed
    file's sha256 (and the source file's).
    """
    card = ModelCard.load(folder)
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source} does not exist.")
    expected = expected_sha256.strip().lower()
    actual = sha256_of(source)
    if actual != expected:
        raise WeightsError(
            f"{source.name} has sha256 {actual}, not the {expected} you gave; "
            "the file is not the one you meant to install."
        )
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except Exception:  # a whole pickled network: allowed only because the hash matched
        loaded = torch.load(source, map_location="cpu", weights_only=False)
    state = loaded.state_dict() if hasattr(loaded, "state_dict") else loaded
    if not isinstance(state, dict):
        raise WeightsError(f"{source.name} holds no state dict or network.")
    state = {key: value for key, value in state.items() if key != "op_threshs"}
    network = build(card.architecture, len(card.labels))
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(
            f"{source.name} does not fit {card.architecture} with {len(card.labels)} outputs: "
            f"{first}"
        ) from None
    target = card.weights_path
    temporary = target.with_suffix(".tmp")
    torch.save(network.state_dict(), temporary)
    temporary.replace(target)
    data = dict(card.data)
    data["sha256"] = sha256_of(target)
    data["training"] = {
        **data.get("training", {}),
        "source_sha256": actual,
        "source_file": source.name,
    }
    installed = ModelCard(data, card.folder)
    installed.save()
    return installed
