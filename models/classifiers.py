"""Image classifiers from torchvision builders: MobileNetV2 (FER, tomato deploy) and ResNet50 (tomato)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2, resnet50


def gray_stem(conv: nn.Conv2d) -> nn.Conv2d:
    """A 1-channel copy of an RGB stem conv whose weights are summed over the colour channels.

    For a gray image fed as three equal channels this is exactly the same function, one third the
    stem's work, and no broadcast op in the graph (LiteRT int8 rejects BROADCAST_TO there).
    """
    new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def mobilenet_v2_classifier(num_classes: int, in_channels: int = 3, pretrained: bool = False) -> nn.Module:
    """MobileNetV2 with a new head; ``pretrained`` loads torchvision's ImageNet file from the hub cache."""
    weights = MobileNet_V2_Weights.IMAGENET1K_V1 if pretrained else None
    net = mobilenet_v2(weights=weights)
    net.classifier[1] = nn.Linear(net.last_channel, num_classes)
    if in_channels == 1:
        net.features[0][0] = gray_stem(net.features[0][0])
    return net


def resnet50_classifier(num_classes: int, in_channels: int = 3) -> nn.Module:
    """ResNet50 from scratch (no ResNet50 ImageNet weights can be had here)."""
    net = resnet50(weights=None, num_classes=num_classes)
    if in_channels == 1:
        net.conv1 = gray_stem(net.conv1)
    return net
