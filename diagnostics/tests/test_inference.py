"""The worker's one-pass Grad-CAM equals ml.gradcam's backpropagated one; heatmaps and regions
keep the original image's geometry."""

import io

import numpy as np
import pytest
from PIL import Image

from diagnostics import inference
from diagnostics.ml import predict as ml
from diagnostics.ml.images import read_image

from .conftest import chest_dicom


@pytest.fixture
def model(weights_root):
    return ml.load(weights_root / "lesion" / "1.0.0", threads=1)


@pytest.mark.parametrize("lesion", [True, False])
def test_closed_form_grad_cam_equals_backpropagated_grad_cam(model, lesion):
    image = read_image(chest_dicom(lesion=lesion, size=60))
    cams, prediction = inference._predict_with_cams(model, image)
    assert cams is not None  # resnet-s: global average pooling + one Linear
    assert prediction.findings == ml.predict(model, image).findings
    fast = inference._resize(cams("lesion"), image.shape)
    slow = ml.gradcam(model, image, "lesion")
    assert fast.shape == slow.shape == (60, 60)
    assert np.allclose(fast, slow, atol=1e-4)


def test_heatmap_png_has_the_image_aspect_and_is_capped(model):
    png, size = inference.heatmap_png(np.eye(6, dtype=np.float32), (3000, 1500))
    assert size == (512, 1024)
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGBA" and image.size == (512, 1024)


def test_regions_are_boxes_in_original_pixels(model):
    cam = np.zeros((6, 6), np.float32)
    cam[1:3, 4:6] = 1.0  # top right
    (box,) = inference._regions(cam, (600, 900))
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= 900 and 0 <= y1 < y2 <= 600
    assert x1 > 450 and y2 < 400  # the right half, the upper part


def test_analysis_of_a_positive_image(model):
    analysis = inference.analyse(model, chest_dicom(lesion=True, size=48))
    (result,) = analysis.labels
    assert result.positive and result.regions and result.heatmap_png.startswith(b"\x89PNG")
    assert analysis.image_size == (48, 48)
