"""The study category and a normalised view position, derived from what the header says.

Categories (``CATEGORIES``) pick which AI models apply and how studies are listed; a user may
correct them later, so the rules here aim at the common case and stay readable:

1. anything that is not an image (SR, PDF, dose report, waveform) is a ``document``;
2. CT, MR and ultrasound go by Modality alone;
3. projection radiographs (CR, DX, and photographed/secondary-capture films) go by keywords in
   BodyPartExamined and the study/series descriptions and protocol, Russian and English:
   cephalometric (TRG, or a lateral skull radiograph) first, then spine (a "грудной отдел
   позвоночника" is a spine, not a chest), then chest;
4. everything else is ``other``.
"""

from __future__ import annotations

import re

CATEGORIES = ("chest_xray", "spine_xray", "ceph_xray", "ct", "mr", "us", "document", "other")

_BY_MODALITY = {"CT": "ct", "MR": "mr", "US": "us"}
_DOCUMENT_MODALITIES = {"SR", "DOC", "KO", "PR", "ECG", "HD", "AU", "RTPLAN", "RTSTRUCT"}
_RADIOGRAPHY_MODALITIES = {"CR", "DX", "DR", "RG", "RF", "PX", "OT", "SC", "XC", ""}

# Lower-cased substrings; Cyrillic stems match all the endings of a word.
_CEPH_WORDS = ("ceph", "трг", "телерентген", "цефал", "trg")
_SPINE_WORDS = (
    "spine",
    "spinal",
    "lumbar",
    "vertebr",
    "sacrum",
    "coccyx",
    "scolio",
    "позвон",
    "поясн",
    "шейн",
    "крестц",
    "копчик",
    "сколиоз",
    "остеохондр",
)
_CHEST_WORDS = (
    "chest",
    "thorax",
    "thoracic",
    "lung",
    "pulmo",
    "огк",
    "грудн",
    "легк",
    "легоч",
    "флюоро",
)
_SPINE_BODY_PARTS = {"SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "COCCYX", "SACRUM"}
_CHEST_BODY_PARTS = {"CHEST", "THORAX", "LUNG", "CHEST_LAT"}
_SKULL_BODY_PARTS = {"SKULL", "HEAD", "JAW", "MANDIBLE", "FACE"}  # + a lateral view = ceph

_VIEW_ALIASES = {
    "PA": "PA",
    "P-A": "PA",
    "POSTEROANTERIOR": "PA",
    "ЗП": "PA",
    "З-П": "PA",
    "ЗАДНЕПЕРЕДНЯЯ": "PA",
    "AP": "AP",
    "A-P": "AP",
    "ANTEROPOSTERIOR": "AP",
    "ПЗ": "AP",
    "П-З": "AP",
    "ПЕРЕДНЕЗАДНЯЯ": "AP",
    "LL": "LL",
    "LLAT": "LL",
    "LEFTLATERAL": "LL",
    "ЛЕВАЯБОКОВАЯ": "LL",
    "RL": "RL",
    "RLAT": "RL",
    "RIGHTLATERAL": "RL",
    "ПРАВАЯБОКОВАЯ": "RL",
    "LAT": "LAT",
    "LATERAL": "LAT",
    "LATERALE": "LAT",
    "БОК": "LAT",
    "БОКОВАЯ": "LAT",
    "ЛАТЕРАЛЬНАЯ": "LAT",
    "RLO": "RLO",
    "LLO": "LLO",
    "RAO": "RAO",
    "LAO": "LAO",
    "OBL": "OBL",
    "OBLIQUE": "OBL",
    "КОСАЯ": "OBL",
    "RLD": "RLD",
    "LLD": "LLD",
}
_VIEW_GROUPS = {
    "PA": "frontal",
    "AP": "frontal",
    "LL": "lateral",
    "RL": "lateral",
    "LAT": "lateral",
    "RLO": "oblique",
    "LLO": "oblique",
    "RAO": "oblique",
    "LAO": "oblique",
    "OBL": "oblique",
    "RLD": "decubitus",
    "LLD": "decubitus",
}
_NOT_LETTERS = re.compile(r"[\s_\-./\\()]+")


def normalize_view_position(value: str) -> str:
    """Map a ViewPosition or a free-text view to one code, or ``""`` when unknown.

    Parameters
    ----------
    value : str
        ``ViewPosition`` (0018,5101) or a view typed by a user, e.g. ``"pa"``, ``"P-A"``,
        ``"lateral"``, ``"боковая"``, ``"левая боковая"``.

    Returns
    -------
    str
        One of ``PA``, ``AP``, ``LL``, ``RL``, ``LAT`` (lateral, side not given), ``RLO``,
        ``LLO``, ``RAO``, ``LAO``, ``OBL`` (oblique, side not given), ``RLD``, ``LLD`` or ``""``.
    """
    text = (value or "").strip().upper().replace("Ё", "Е")
    if not text:
        return ""
    if text in _VIEW_ALIASES:
        return _VIEW_ALIASES[text]
    return _VIEW_ALIASES.get(_NOT_LETTERS.sub("", text), "")


def view_group(view_position: str) -> str:
    """``"frontal"``, ``"lateral"``, ``"oblique"``, ``"decubitus"`` or ``""`` for a view."""
    return _VIEW_GROUPS.get(normalize_view_position(view_position), "")


def derive_category(
    *,
    modality: str = "",
    body_part: str = "",
    study_description: str = "",
    series_description: str = "",
    protocol_name: str = "",
    view_position: str = "",
    is_image: bool = True,
) -> str:
    """Derive the study category from header values (see the module's rules).

    Parameters
    ----------
    modality, body_part, study_description, series_description, protocol_name, view_position
        The header values (any case; Russian or English descriptions).
    is_image : bool
        False for instances without pixels (reports, PDFs, dose SRs): always ``"document"``.

    Returns
    -------
    str
        One of :data:`CATEGORIES`.
    """
    modality = (modality or "").strip().upper()
    if not is_image or modality in _DOCUMENT_MODALITIES:
        return "document"
    if modality in _BY_MODALITY:
        return _BY_MODALITY[modality]
    if modality not in _RADIOGRAPHY_MODALITIES:
        return "other"
    part = _NOT_LETTERS.sub("", (body_part or "").upper())
    text = " ".join((body_part, study_description, series_description, protocol_name))
    text = text.lower().replace("ё", "е")
    if _has(text, _CEPH_WORDS):
        return "ceph_xray"
    if part in _SKULL_BODY_PARTS and view_group(view_position) == "lateral" and modality:
        return "ceph_xray"  # a lateral skull radiograph from a cephalostat
    if part in _SPINE_BODY_PARTS or _has(text, _SPINE_WORDS):
        return "spine_xray"
    if part in _CHEST_BODY_PARTS or _has(text, _CHEST_WORDS):
        return "chest_xray"
    return "other"


def category_of(header) -> str:
    """:func:`derive_category` for a :class:`~studies.dicom.parse.InstanceHeader`."""
    return derive_category(
        modality=header.modality,
        body_part=header.body_part,
        study_description=header.study_description,
        series_description=header.series_description,
        protocol_name=header.protocol_name,
        view_position=header.view_position,
        is_image=header.is_image,
    )


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(word in text for word in words)
