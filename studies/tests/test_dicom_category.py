"""Study category and view position from header values (table-driven)."""

import pytest

from studies.dicom.category import (
    CATEGORIES,
    category_of,
    derive_category,
    normalize_view_position,
    view_group,
)
from studies.dicom.parse import parse_instance
from studies.tests.dicom_samples import TEST_FILES


@pytest.mark.parametrize(
    ("values", "category"),
    [
        ({"modality": "CR", "body_part": "CHEST"}, "chest_xray"),
        ({"modality": "DX", "study_description": "ОГК в прямой проекции"}, "chest_xray"),
        (
            {"modality": "DX", "study_description": "Рентгенография органов грудной клетки"},
            "chest_xray",
        ),
        ({"modality": "CR", "series_description": "Лёгкие"}, "chest_xray"),
        ({"modality": "DX", "protocol_name": "Chest PA"}, "chest_xray"),
        ({"modality": "DX", "study_description": "Флюорография"}, "chest_xray"),
        ({"modality": "DX", "body_part": "LSPINE"}, "spine_xray"),
        ({"modality": "CR", "body_part": "L-SPINE"}, "spine_xray"),
        ({"modality": "DX", "study_description": "Lumbar spine AP/LAT"}, "spine_xray"),
        ({"modality": "DX", "study_description": "Грудной отдел позвоночника"}, "spine_xray"),
        ({"modality": "CR", "study_description": "Поясничный отдел"}, "spine_xray"),
        (
            {"modality": "DX", "body_part": "CHEST", "series_description": "Thoracic spine"},
            "spine_xray",
        ),
        ({"modality": "PX", "study_description": "ТРГ боковая"}, "ceph_xray"),
        ({"modality": "DX", "study_description": "Cephalometric"}, "ceph_xray"),
        ({"modality": "CR", "study_description": "Телерентгенограмма"}, "ceph_xray"),
        ({"modality": "DX", "body_part": "SKULL", "view_position": "LL"}, "ceph_xray"),
        ({"modality": "DX", "body_part": "SKULL", "view_position": "PA"}, "other"),
        ({"modality": "CT", "body_part": "CHEST"}, "ct"),
        ({"modality": "mr", "study_description": "Позвоночник"}, "mr"),
        ({"modality": "US"}, "us"),
        ({"modality": "SR"}, "document"),
        ({"modality": "DX", "is_image": False}, "document"),
        ({"modality": "DX", "body_part": "HAND"}, "other"),
        ({"modality": "MG", "study_description": "chest"}, "other"),
        ({"modality": "NM"}, "other"),
        ({"modality": "OT", "study_description": "photo of a chest film"}, "chest_xray"),
        ({}, "other"),
    ],
)
def test_derive_category(values, category):
    assert derive_category(**values) == category
    assert category in CATEGORIES


@pytest.mark.parametrize(
    ("value", "code", "group"),
    [
        ("PA", "PA", "frontal"),
        ("pa", "PA", "frontal"),
        ("P-A", "PA", "frontal"),
        ("posteroanterior", "PA", "frontal"),
        ("З-П", "PA", "frontal"),
        ("AP", "AP", "frontal"),
        ("A/P", "AP", "frontal"),
        ("LL", "LL", "lateral"),
        ("left lateral", "LL", "lateral"),
        ("RL", "RL", "lateral"),
        ("LATERAL", "LAT", "lateral"),
        ("боковая", "LAT", "lateral"),
        ("Левая боковая", "LL", "lateral"),
        ("oblique", "OBL", "oblique"),
        ("RLO", "RLO", "oblique"),
        ("LLD", "LLD", "decubitus"),
        ("", "", ""),
        ("something", "", ""),
    ],
)
def test_normalize_view_position(value, code, group):
    assert normalize_view_position(value) == code
    assert view_group(value) == group


def test_category_of_a_parsed_header():
    assert category_of(parse_instance(TEST_FILES / "CT_small.dcm", default_zone="UTC")) == "ct"
    report = parse_instance(TEST_FILES / "test-SR.dcm", default_zone="UTC")
    assert category_of(report) == "document"
