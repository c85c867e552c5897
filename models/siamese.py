"""Siamese face embedders: the paper's SqueezeNet 1.0 feature extractor (7x7 stride-2 stem, fire modules) and a
MobileNetV2 deploy variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import squeezenet1_0


class SiameseSqueezeNet(nn.Module):
    """SqueezeNet features -> 1x1 conv -> global average pool -> L2-normalised embedding.

    Both branches of the Siamese pair share this module; at inference it embeds one face.
    """

    def __init__(self, embedding_size: int = 128, in_channels: int = 1) -> None:
        super().__init__()
        features = squeezenet1_0(weights=None).features
        if in_channels != 3:
            stem = features[0]
            features[0] = nn.Conv2d(in_channels, stem.out_channels, stem.kernel_size, stem.stride)
        self.features = features
        self.head = nn.Conv2d(512, embedding_size, kernel_size=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.features(x))).flatten(1)
        return F.normalize(x, dim=1)


def siamese_squeezenet(embedding_size: int = 128, in_channels: int = 1) -> SiameseSqueezeNet:
    """Build the face embedder (random init: no SqueezeNet ImageNet weights exist here)."""
    return SiameseSqueezeNet(embedding_size=embedding_size, in_channels=in_channels)


class SiameseMobileNetV2(nn.Module):
    """MobileNetV2 features (1-channel stem summed from the RGB one) -> global average pool -> linear ->
    L2-normalised embedding: the deploy variant, ImageNet-initialised when ``pretrained``."""

    def __init__(self, embedding_size: int = 128, in_channels: int = 1, pretrained: bool = False) -> None:
        super().__init__()
        from edge.models.classifiers import mobilenet_v2_classifier

        net = mobilenet_v2_classifier(1, in_channels=in_channels, pretrained=pretrained)
        self.features = net.features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(1280, embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.pool(self.features(x)).flatten(1)), dim=1)


def siamese_mobilenet_v2(embedding_size: int = 128, in_channels: int = 1,
                         pretrained: bool = False) -> SiameseMobileNetV2:
    """Build the MobileNetV2 face embedder (``pretrained``: torchvision's ImageNet file from the hub cache)."""
    return SiameseMobileNetV2(embedding_size=embedding_size, in_channels=in_channels, pretrained=pretrained)


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, same: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Hadsell et al. contrastive loss on Euclidean distance; ``same`` is 1 for a genuine pair."""
    d = F.pairwise_distance(a, b)
    return (same * d.pow(2) + (1 - same) * F.relu(margin - d).pow(2)).mean() / 2
