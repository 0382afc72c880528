"""Recipes of the shipped models: training configuration and what their cards say.

``train_model pneumonia`` and ``train_model scoliosis`` use these; any other name is a
hospital's own model, described by the command's options.
"""

from __future__ import annotations

from .pipeline import ModelSpec
from .train import TrainConfig

KERMANY = {
    "citation": (
        "Kermany D., Zhang K., Goldbaum M. (2018), Labeled Optical Coherence Tomography (OCT) "
        "and Chest X-Ray Images for Classification, Mendeley Data, v2, "
        "doi:10.17632/rscbjbr9sj.2 (training split, resized to 224x224)"
    ),
    "licence": "CC BY 4.0",
    "url": "https://doi.org/10.17632/rscbjbr9sj.2",
}
FRAIWAN = {
    "citation": (
        "Fraiwan M., Audat Z., Fraiwan L., Manasreh T. (2022), Using deep transfer learning to "
        "detect scoliosis and spondylolisthesis from x-ray images, PLoS One 17(5): e0267851; "
        "data: Mendeley Data, doi:10.17632/xkt857dsxk.1"
    ),
    "licence": "CC BY 4.0",
    "url": "https://doi.org/10.17632/xkt857dsxk.1",
}


def pneumonia(version: str) -> tuple[TrainConfig, ModelSpec]:
    config = TrainConfig(
        name="pneumonia",
        version=version,
        class_names=["normal", "pneumonia"],
        size=(192, 192),
        epochs=30,
        patience=7,
        horizontal_flip=False,  # the heart is on the left: a flipped film is not a real film
        target_sensitivity=0.96,  # a margin over the 0.95 goal for the harder test split
    )
    spec = ModelSpec(
        title="Pediatric pneumonia (chest X-ray)",
        description=(
            "Pneumonia vs normal on frontal chest X-rays of children aged 0–10, trained from "
            "scratch by the project's train_model command."
        ),
        intended_use=(
            "Triage aid: raises the reading priority of likely pneumonia. Not a diagnosis; a "
            "radiologist reads every study."
        ),
        applies_to={
            "categories": ["chest_xray"],
            "view_positions": ["PA", "AP"],
            "age_years": {"min": 0, "max": 10},
        },
        data=KERMANY,
        limitations=[
            "Trained on one centre's pediatric films (Guangzhou Women and Children's Medical "
            "Center); other hospitals' equipment and populations may lower accuracy.",
            "Does not separate bacterial from viral pneumonia and says nothing of other findings.",
            "The official test split was not used; the figures are patient-disjoint validation "
            "figures and the held-back test split is known to be harder.",
            "Adults are out of scope (applies_to age 0–10).",
        ],
    )
    return config, spec


def scoliosis(version: str) -> tuple[TrainConfig, ModelSpec]:
    config = TrainConfig(
        name="scoliosis",
        version=version,
        class_names=["normal", "scoliosis"],
        size=(384, 128),  # spine films are tall: height x width
        epochs=45,
        batch_size=16,
        learning_rate=2e-3,
        folds=5,
        # A mirrored spine has the same curvature: flipping keeps the label and doubles data.
        horizontal_flip=True,
        rotate_degrees=6.0,
        target_sensitivity=0.9,
    )
    spec = ModelSpec(
        title="Scoliosis (spine X-ray)",
        description=(
            "Scoliosis vs normal on frontal whole-spine X-rays, trained from scratch by the "
            "project's train_model command."
        ),
        intended_use="Screening aid in spine clinics; a radiologist measures the Cobb angle.",
        applies_to={
            "categories": ["spine_xray"],
            "view_positions": ["PA", "AP"],
            "age_years": {"min": None, "max": None},
        },
        data=FRAIWAN,
        limitations=[
            "Spondylolisthesis is not covered: the data set's spondylolisthesis images were not "
            "available here. train_model can add it as a third class from a hospital's studies "
            "labelled by signed reports.",
            "164 images only: the confidence intervals are wide.",
            "In this data set the normal films are narrower crops than the scoliosis films "
            "(median width/height 0.25 vs 0.37) and come from different sources; part of the "
            "measured accuracy may come from framing rather than anatomy. Check it on your own "
            "films with evaluate_model before relying on it.",
            "Does not measure the Cobb angle or grade severity.",
        ],
    )
    return config, spec


PRESETS = {"pneumonia": pneumonia, "scoliosis": scoliosis}


XRV_LABELS = [
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural_Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
]
# TorchXRayVision's published operating points of densenet121-res224-all (sigmoid outputs).
XRV_OPERATING_POINTS = [
    0.07422872,
    0.038290843,
    0.09814756,
    0.0098118475,
    0.023601074,
    0.0022490358,
    0.010060724,
    0.103246614,
    0.056810737,
    0.026791653,
    0.050318155,
    0.023985857,
    0.01939503,
    0.042889766,
    0.053369623,
    0.035975814,
    0.20204692,
    0.05015312,
]
XRV_WEIGHTS_URL = (
    "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
    "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-"
    "best.pt"
)


def chest_pathologies_card(version: str = "1.0.0") -> dict:
    """The card of the operator-installed TorchXRayVision model, before weights arrive."""
    from .card import CARD_VERSION
    from .preprocess import Preprocessing

    preprocessing = Preprocessing(
        size=(224, 224), resize_mode="center-crop-square-bilinear", normalization="xrv-1024"
    ).to_card()
    preprocessing["description"] = (
        "grey in [0, 1] (DICOM: modality LUT, then the header's VOI LUT or first window, else "
        "the full range; MONOCHROME1 inverted); centre crop to a square; resize to 224x224 "
        "bilinear; scale to [-1024, 1024] as TorchXRayVision expects"
    )
    return {
        "card_version": CARD_VERSION,
        "name": "chest-pathologies",
        "version": version,
        "task": "multilabel",
        "title": "Chest X-ray pathologies (TorchXRayVision DenseNet-121)",
        "description": (
            "18 findings on adult frontal chest X-rays: TorchXRayVision's densenet121-res224-all "
            "network. Its weights are not shipped: an operator installs them with "
            "manage.py import_weights."
        ),
        "intended_use": "Triage aid for adult chest X-rays; a radiologist reads every study.",
        "labels": XRV_LABELS,
        "negative_label": "No Finding",
        "architecture": "xrv-densenet121",
        "weights_file": "weights.pt",
        "sha256": None,
        "weights_shipped": False,
        "preprocessing": preprocessing,
        "temperature": 1.0,
        "thresholds": dict(zip(XRV_LABELS, XRV_OPERATING_POINTS, strict=True)),
        "severity": {"moderate": 0.5, "high": 0.8},
        "applies_to": {
            "categories": ["chest_xray"],
            "view_positions": ["PA", "AP"],
            "age_years": {"min": 18, "max": None},
        },
        "metrics": {
            "method": (
                "Not measured here: no labelled validation set of these 18 findings is held. "
                "Published figures: Cohen J.P. et al. (2022), TorchXRayVision, MIDL, "
                "arXiv:2111.00595; Cohen J.P. et al. (2020), arXiv:2002.02497."
            ),
            "per_label": {},
        },
        "figures": {},
        "training": {
            "by": "TorchXRayVision authors (not trained by this project)",
            "source": "densenet121-res224-all",
            "source_url": XRV_WEIGHTS_URL,
        },
        "data": {
            "citation": (
                "Cohen J.P., Viviano J.D., Bertin P. et al. (2022), TorchXRayVision: A library of "
                "chest X-ray datasets and models, MIDL, arXiv:2111.00595; trained on NIH "
                "ChestX-ray14, PadChest, CheXpert, MIMIC-CXR, Google, OpenI and RSNA data."
            ),
            "licence": (
                "Code Apache-2.0. The training sets carry their own terms: CheXpert and "
                "MIMIC-CXR under research-use agreements (PhysioNet credentialed licence for "
                "MIMIC-CXR), PadChest under its own research licence, NIH ChestX-ray14 public "
                "with citation. The hospital must check these terms before clinical use."
            ),
            "url": "https://github.com/mlmed/torchxrayvision",
        },
        "limitations": [
            "Probabilities are the network's sigmoid outputs, not recalibrated here "
            "(temperature 1); thresholds are the authors' published operating points.",
            "Adults only; lateral views are out of scope.",
            "Weights are installed by an operator; until then the model is unavailable.",
        ],
    }
