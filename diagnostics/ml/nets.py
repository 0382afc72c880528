"""Network architectures the project trains from scratch (no pretrained weights exist here).

``resnet-s``: a small residual network for grey X-rays. One 5×5 stride-2 stem, then four
stages of basic residual blocks (stride 2 between stages), global average pooling and one
logit per finding. About 1.2 M parameters (≈ 5 MB of float32), fast enough to train on two CPU
cores. ``gradcam_layer`` names the last convolutional stage, used for Grad-CAM.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    gradcam_layer = "stage4"

    def __init__(
        self,
        num_outputs: int,
        widths: tuple[int, ...] = (24, 48, 96, 192),
        blocks: tuple[int, ...] = (1, 1, 2, 1),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 5, 2, 2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages = []
        in_channels = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            layers = []
            for block in range(count):
                stride = 2 if block == 0 and index > 0 else 1
                layers.append(BasicBlock(in_channels, width, stride))
                in_channels = width
            stages.append(nn.Sequential(*layers))
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_channels, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage4(self.stage3(self.stage2(self.stage1(x))))
        return self.head(x)


def xrv_densenet121(num_outputs: int) -> nn.Module:
    """TorchXRayVision's DenseNet-121 (224×224, one grey channel), returning raw logits.

    Built without weights (nothing is downloaded); ``import_weights`` installs a state dict.
    The forward pass is the package's without its operating-point rescaling: the card's
    thresholds carry the operating points instead, like every other model's.
    """
    import torchxrayvision as xrv

    class XRVDenseNet121(xrv.models.DenseNet):
        gradcam_layer = "features"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = torch.relu(self.features(x))
            pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)
            return self.classifier(pooled)

    return XRVDenseNet121(num_classes=num_outputs, weights=None)


ARCHITECTURES = {"resnet-s": SmallResNet, "xrv-densenet121": xrv_densenet121}


def build(architecture: str, num_outputs: int) -> nn.Module:
    """Build an untrained network by its card name."""
    try:
        factory = ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"Unknown architecture {architecture!r}; known: {known}.") from None
    return factory(num_outputs)
