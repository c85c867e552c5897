"""EfficientNet-B4 with a Spatial Transformer in front (ASL letters)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import efficientnet_b4


class SpatialTransformer(nn.Module):
    """Localisation net -> 6 affine parameters (identity at init) -> affine_grid + grid_sample."""

    def __init__(self, in_channels: int = 1, loc_size: int = 64) -> None:
        super().__init__()
        self.loc_size = loc_size
        self.loc = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(32 * 16, 64), nn.ReLU(inplace=True),
        )
        self.theta = nn.Linear(64, 6)
        nn.init.zeros_(self.theta.weight)
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, size=(self.loc_size, self.loc_size), mode="bilinear", align_corners=False)
        theta = self.theta(self.loc(small)).view(-1, 2, 3)
        grid = affine_grid(theta.view(-1, 6), x.shape[-2], x.shape[-1])
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta.view(-1, 2, 3), ..., align_corners=False)`` from elementwise ops.

    Written out so every converter takes it: ncnn has no AffineGrid layer, and older ONNX opsets
    have none either.  The sampling itself stays ``grid_sample`` (GridSample in ONNX, ncnn, LiteRT).
    """
    # pixel centres (2i + 1) / n - 1; linspace keeps it float (int64 arange trips int8 observers)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, dtype=theta.dtype, device=theta.device)
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, dtype=theta.dtype, device=theta.device)
    gx = xs.view(1, 1, w)
    gy = ys.view(1, h, 1)
    t = theta.view(-1, 6, 1, 1)
    out_x = t[:, 0] * gx + t[:, 1] * gy + t[:, 2]
    out_y = t[:, 3] * gx + t[:, 4] * gy + t[:, 5]
    return torch.stack([out_x, out_y], dim=-1)


class STNClassifier(nn.Module):
    """Optional STN in front of an image classifier backbone (``stn.*`` and ``backbone.*`` in the state dict)."""

    # int8 exporters keep these submodules in float: sampling coordinates quantised to 8 bits
    # move every pixel, and the STN costs little next to the backbone.
    keep_float = ("stn",)

    def __init__(self, make_backbone: Callable[[], nn.Module], in_channels: int = 1, stn: bool = True) -> None:
        super().__init__()
        # the STN is made first, so a seed gives the same weights as before the backbones shared this class
        self.stn = SpatialTransformer(in_channels) if stn else nn.Identity()
        self.backbone = make_backbone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.stn(x))


def stn_efficientnet_b4(num_classes: int = 26, in_channels: int = 1, stn: bool = True,
                        stochastic_depth: float = 0.2) -> STNClassifier:
    """The paper's ASL classifier: STN + EfficientNet-B4 with a grayscale stem (random init: no EfficientNet-B4
    ImageNet weights exist here). ``stochastic_depth`` is torchvision's block drop rate (0.2 by default)."""

    def backbone() -> nn.Module:
        net = efficientnet_b4(weights=None, num_classes=num_classes, stochastic_depth_prob=stochastic_depth)
        if in_channels != 3:
            stem = net.features[0][0]
            net.features[0][0] = nn.Conv2d(
                in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False
            )
        return net

    return STNClassifier(backbone, in_channels, stn)


def stn_mobilenet_v2(num_classes: int = 26, in_channels: int = 1, stn: bool = True,
                     pretrained: bool = False) -> STNClassifier:
    """The CPU-sized ASL variant: STN + MobileNetV2 (ImageNet-initialised when ``pretrained``), grayscale stem.

    No EfficientNet-B4 ImageNet weights exist here, and B4 from scratch does not learn 26 letters from 2,080
    images in a CPU session; MobileNetV2's ImageNet file does exist.
    """
    from edge.models.classifiers import mobilenet_v2_classifier

    return STNClassifier(lambda: mobilenet_v2_classifier(num_classes, in_channels=in_channels, pretrained=pretrained),
                         in_channels, stn)
