"""Batched augmentation on uint8 tensors, for the variation the outside world brings.

Geometry (rotation, scale, shift, flip, shear) in one affine grid_sample per batch; photometric
(brightness, contrast, gamma, colour cast, saturation, hard side light, blur, noise). Other backgrounds behind the
ASL hands come from ``backgrounds.py`` (it needs hand masks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.8, 1.15)
    shift: float = 0.1
    shear: float = 0.1
    flip: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    gamma: float = 0.3
    blur_p: float = 0.2
    noise_std: float = 0.03
    # colour images only: per-channel gains exp(U(-c, c)) (another camera's white balance) and
    # saturation scaled by U(1 - s, 1 + s); 0 = off (gray images ignore both)
    color_cast: float = 0.0
    saturation: float = 0.0
    # hard side light: with this probability, a soft-edged shadow falls across the picture from a random
    # side (one part down to 15-70 % brightness, the other up to 100-130 %); 0 = off
    shade_p: float = 0.0


def color_shift(x: torch.Tensor, gains: torch.Tensor, saturation: torch.Tensor | float = 1.0) -> torch.Tensor:
    """RGB (N, 3, H, W) in [0, 1]: per-channel gains (N, 3), then saturation (N,) around each pixel's gray."""
    x = x * gains.view(-1, 3, 1, 1)
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    s = torch.as_tensor(saturation, dtype=x.dtype).view(-1, 1, 1, 1)
    return (gray + (x - gray) * s).clamp(0, 1)


def side_light(size: tuple[int, int] | torch.Size, angle: torch.Tensor, offset: torch.Tensor, softness: torch.Tensor,
               dark: torch.Tensor, bright: torch.Tensor) -> torch.Tensor:
    """(N, H, W) brightness factors: ``dark`` on one side of a line at ``angle`` (radians) and ``offset`` from the
    centre (image half-widths), ``bright`` on the other, with a sigmoid edge ``softness`` half-widths wide."""
    h, w = size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    c, s = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    edge = torch.sigmoid((xx * c + yy * s - offset.view(-1, 1, 1)) / softness.view(-1, 1, 1))
    return dark.view(-1, 1, 1) + (bright - dark).view(-1, 1, 1) * edge


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """x: float (N, C, H, W) in [0, 1] -> augmented, same shape, in [0, 1]."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    ang = u(-cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180
    sc = u(*cfg.scale)
    sh = u(-cfg.shear, cfg.shear)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin + sh
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = u(-cfg.shift, cfg.shift) * 2
    theta[:, 1, 2] = u(-cfg.shift, cfg.shift) * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    b = u(-cfg.brightness, cfg.brightness).view(n, 1, 1, 1)
    c = u(1 - cfg.contrast, 1 + cfg.contrast).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean + b).clamp(0, 1)
    g = torch.exp(u(-cfg.gamma, cfg.gamma)).view(n, 1, 1, 1)
    x = x.clamp_min(1e-6) ** g
    if x.shape[1] == 3 and (cfg.color_cast > 0 or cfg.saturation > 0):
        x = color_shift(x, torch.exp(torch.rand(n, 3, generator=gen) * 2 * cfg.color_cast - cfg.color_cast),
                        u(1 - cfg.saturation, 1 + cfg.saturation))
    if cfg.shade_p > 0:
        x = torch.where((torch.rand(n, generator=gen) < cfg.shade_p).view(n, 1, 1, 1),
                        x * side_light(x.shape[-2:], u(0, 2 * math.pi), u(-0.3, 0.3), u(0.05, 0.4),
                                       u(0.15, 0.7), u(1.0, 1.3))[:, None], x).clamp(0, 1)
    if cfg.blur_p > 0:
        blur = torch.rand(n, generator=gen) < cfg.blur_p
        if blur.any():
            k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
            k = (k[:, None] * k[None]) / 256
            ch = x.shape[1]
            w = k.expand(ch, 1, 5, 5).contiguous()
            x[blur] = F.conv2d(F.pad(x[blur], (2, 2, 2, 2), mode="reflect"), w, groups=ch)
    if cfg.noise_std > 0:
        x = x + torch.randn(x.shape, generator=gen) * cfg.noise_std * torch.rand(n, 1, 1, 1, generator=gen)
    return x.clamp(0, 1)


def equalized_float(x: torch.Tensor, clip: float) -> torch.Tensor:
    """Float (N, C, H, W) in [0, 1] (e.g. augmented) -> the same through 8 bits and ``edge.data.equalize_batch``:
    the CLAHE the runtime applies to what the camera gives (no-op when ``clip`` is 0)."""
    if not clip:
        return x
    from edge.data import equalize_batch

    u8 = (x * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    return torch.from_numpy(equalize_batch(u8, clip)).float() / 255.0
