"""The reference each export is checked against: a trained checkpoint or a documented random init,
plus the real data slices used for calibration and parity."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.data import load_batch, split_for, take_spread
from edge.errors import EdgeError
from edge.families import Family
from edge.manifest import InputSpec
from edge.models.checkpoint import build, model_from_payload, read_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class Reference:
    family: Family
    model: Any  # torch module or sklearn estimator
    spec: InputSpec
    checkpoint: Path
    trained: bool
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSlice:
    x: np.ndarray
    y: np.ndarray | None
    source: str  # "real: <where>" or "synthetic: <why>"


def default_checkpoint(family: Family, runs: Path = Path("runs")) -> Path | None:
    """A trained checkpoint from ``edge train`` if one exists (runs/<family>/best.*)."""
    for suffix in (".pt", ".pkl"):
        p = runs / family.name / f"best{suffix}"
        if p.exists():
            return p
    return None


def load_reference(family: Family, checkpoint: Path | None, out_dir: Path, imgsz: int | None,
                   calib: DataSlice | None = None, seed: int = 0) -> Reference:
    """Load a trained checkpoint, or build a seeded random init and save it as the reference."""
    if checkpoint is not None:
        payload = read_checkpoint(Path(checkpoint))
        if payload["family"] != family.name:
            raise EdgeError(f"{checkpoint} is a '{payload['family']}' checkpoint, not '{family.name}'")
        meta = payload.get("meta", {})
        model = model_from_payload(payload, Path(checkpoint))
        spec = InputSpec.from_dict(meta["input"]) if "input" in meta else family.input_spec(imgsz)
        if imgsz and family.kind == "image" and spec.shape[2] != imgsz:
            spec = replace(family.input_spec(imgsz), clahe=spec.clahe)
        return Reference(family, model, spec, Path(checkpoint), bool(meta.get("trained", True)), meta)
    if family.kind == "tree":
        raise EdgeError(
            "the trail tree has no random init: train it first with 'edge train trail' (a few seconds)"
        )
    torch.manual_seed(seed)
    model = build(family).eval()
    spec = family.input_spec(imgsz)
    if calib is not None:
        warm_batchnorm(model, torch.from_numpy(calib.x[:64]))
    path = out_dir / f"{family.name}.pt"
    meta = {"trained": False, "input": spec.__dict__, "classes": family.classes,
            "note": f"random init (seed {seed}), BatchNorm statistics from the calibration slice"}
    save_checkpoint(path, family, model, meta)
    return Reference(family, model, spec, path, False, meta)


def warm_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Give a random-init net realistic BatchNorm statistics, so its outputs are not ~0.

    Without this, untrained nets output values near 1e-9 and every parity check passes trivially.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for chunk in torch.split(x, 16):
            if chunk.shape[0] > 1:
                model(chunk)
    model.eval()


def image_slice(family: Family, spec: InputSpec, part: str, n: int, seed: int = 0,
                data: str | None = None) -> DataSlice:
    """n real images from one split of the family's data set (``data``: the user's folder the model was trained
    on), or a synthetic fallback."""
    try:
        split = split_for(family.name, data)
        samples = take_spread(split[part], n)
        x, y, bad = load_batch(samples, spec)
        return DataSlice(x, y, f"real: {data or family.dataset} {part} split, {len(x)} images ({bad} unreadable)")
    except EdgeError as exc:
        log.warning("%s: %s; using synthetic inputs", family.name, exc)
        rng = np.random.default_rng(seed)
        shape = [n] + [int(d) for d in spec.shape[1:]]
        # Smooth random images in the normalised range, not white noise: closer to real activations.
        raw = rng.uniform(0, 255, size=shape).astype(np.float32)
        mean = np.asarray(spec.mean or [0.0], dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(spec.std or [1.0], dtype=np.float32).reshape(1, -1, 1, 1)
        x = ((raw * spec.scale) - mean) / std
        return DataSlice(x.astype(np.float32), None, f"synthetic: uniform random pixels ({exc})")
